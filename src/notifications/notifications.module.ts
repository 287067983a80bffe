import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { RoomStoreModule } from '../rooms/room-store.module';
import { Notification } from './notification.entity';
import { NotificationStore } from './notification.store';
import { NotificationsController } from './notifications.controller';
import { NotificationsService } from './notifications.service';

/**
 * Notifications (docs/architecture.md, "Mentions, threads, notifications and push"): decided
 * after commit from `message.created`/`message.updated`, announced as `notification.created`
 * (the chat module emits it to the recipient's sockets; push delivers it to offline phones).
 */
@Module({
  imports: [TypeOrmModule.forFeature([Notification]), RoomStoreModule],
  controllers: [NotificationsController],
  providers: [NotificationStore, NotificationsService],
  exports: [NotificationsService],
})
export class NotificationsModule {}
