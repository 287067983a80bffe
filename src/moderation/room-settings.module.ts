import { Module } from '@nestjs/common';
import { RoomStoreModule } from '../rooms/room-store.module';
import { RoomSettingsCache } from './room-settings.cache';
import { SlowModeService } from './slow-mode.service';
import { WordFilterStore } from './word-filter.store';

/**
 * What the send path needs of moderation (slow mode, word filters), kept out of
 * ModerationModule so that messages and personas can import it without a cycle.
 */
@Module({
  imports: [RoomStoreModule],
  providers: [RoomSettingsCache, SlowModeService, WordFilterStore],
  exports: [RoomSettingsCache, SlowModeService, WordFilterStore],
})
export class RoomSettingsModule {}
