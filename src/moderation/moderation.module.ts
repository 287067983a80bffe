import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { MessagesModule } from '../messages/messages.module';
import { RoomStoreModule } from '../rooms/room-store.module';
import { RoomsModule } from '../rooms/rooms.module';
import { UsersModule } from '../users/users.module';
import { ModerationController } from './moderation.controller';
import { ModerationService } from './moderation.service';
import { ModerationStore } from './moderation.store';
import { Report } from './report.entity';
import { ReportsController } from './reports.controller';
import { ReportsService } from './reports.service';
import { ReportsStore } from './reports.store';
import { RoomBan } from './room-ban.entity';
import { RoomSettingsController } from './room-settings.controller';
import { RoomSettingsModule } from './room-settings.module';
import { RoomSettingsService } from './room-settings.service';
import { WordFilter } from './word-filter.entity';
import { WordFilterService } from './word-filter.service';

/**
 * Moderation (docs/architecture.md, "Moderation and audit"): mutes, bans, archive, slow mode,
 * word filters and reports. The access policy decides who may do each; this module's services
 * hold the orchestration, its stores own room_bans, word_filters and reports.
 */
@Module({
  imports: [
    TypeOrmModule.forFeature([RoomBan, WordFilter, Report]),
    RoomStoreModule,
    MessagesModule,
    UsersModule,
    RoomsModule,
    RoomSettingsModule,
  ],
  controllers: [ModerationController, ReportsController, RoomSettingsController],
  providers: [
    ModerationStore,
    ModerationService,
    ReportsStore,
    ReportsService,
    RoomSettingsService,
    WordFilterService,
  ],
  exports: [ModerationService, ReportsService],
})
export class ModerationModule {}
