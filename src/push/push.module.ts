import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { PushController } from './push.controller';
import { PushOutboxRow } from './push-outbox.entity';
import { PushSettings } from './push-settings.entity';
import { PushWorker } from './push-worker.service';
import { PushService } from './push.service';
import { PushStore } from './push.store';
import { Pusher } from './pusher.entity';

/**
 * Push for phones (docs/architecture.md, "Mentions, threads, notifications and push"): pushers,
 * push settings, the outbox and its worker. Fed by `notification.created`.
 */
@Module({
  imports: [TypeOrmModule.forFeature([Pusher, PushSettings, PushOutboxRow])],
  controllers: [PushController],
  providers: [PushStore, PushService, PushWorker],
  exports: [PushService],
})
export class PushModule {}
