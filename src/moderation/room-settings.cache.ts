import { Injectable, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { OnEvent } from '@nestjs/event-emitter';
import type { Env } from '../config/env';
import type { DomainEventMap } from '../events/domain-events';
import { RedisChannels } from '../redis/redis-channels';
import { SharedCache } from '../redis/shared-cache';
import { RoomStore } from '../rooms/room.store';
import { type CompiledFilter, compileFilter } from './word-filter';
import { WordFilterStore } from './word-filter.store';

/** What the send path needs of a room, besides what its insert statement checks. */
export interface RoomSettings {
  /** Least time between two messages of one member (0: off). */
  slowModeMs: number;
  /** The room's word-filter rules and the global ones, compiled once. */
  filter: CompiledFilter;
}

/** Redis channel telling the other instances to drop a room's settings (or all: key null). */
export const ROOM_SETTINGS_CHANNEL = 'parlor:room-settings';

/**
 * Per-room moderation settings in memory, so the send path costs no query for them: each room
 * is read once (slow mode from RoomStore, rules from WordFilterStore, compiled at once), then
 * served from memory until a change drops it (a SharedCache):
 * - on this instance, by the domain event of the change (`room.updated`, `room.deleted`,
 *   `filters.changed`; global rules drop every room);
 * - on the others, by a message on the Redis channel `parlor:room-settings`
 *   (RedisChannels); after a reconnect of the subscriber everything is dropped, since messages
 *   may have been missed;
 * - whatever happens, after ROOM_SETTINGS_TTL_MS.
 *
 * A load that was under way when a change dropped the room is answered to its callers but not
 * kept (the generation counter moved on), so a stale read never outlives the change.
 */
@Injectable()
export class RoomSettingsCache implements OnModuleInit, OnModuleDestroy {
  private readonly cache: SharedCache<RoomSettings>;

  constructor(
    roomStore: RoomStore,
    filters: WordFilterStore,
    channels: RedisChannels,
    config: ConfigService<Env, true>,
  ) {
    this.cache = new SharedCache({
      channel: ROOM_SETTINGS_CHANNEL,
      ttlMs: config.get('ROOM_SETTINGS_TTL_MS', { infer: true }),
      maxKeys: config.get('ROOM_SETTINGS_CACHE_ROOMS', { infer: true }),
      channels,
      load: async (roomId) => {
        const [slowModeMs, rules] = await Promise.all([
          roomStore.slowModeMs(roomId),
          filters.rulesFor(roomId),
        ]);
        return { slowModeMs: slowModeMs ?? 0, filter: compileFilter(rules) };
      },
    });
  }

  onModuleInit(): void {
    this.cache.start();
  }

  onModuleDestroy(): void {
    this.cache.stop();
  }

  /** The room's settings: from memory (synchronously) when held, else read once. */
  get(roomId: string): RoomSettings | Promise<RoomSettings> {
    return this.cache.get(roomId);
  }

  @OnEvent('room.updated')
  onRoomUpdated({ room }: DomainEventMap['room.updated']): void {
    this.cache.changed(room.id);
  }

  @OnEvent('room.deleted')
  onRoomDeleted({ roomId }: DomainEventMap['room.deleted']): void {
    this.cache.changed(roomId);
  }

  /** Global rules (roomId null) drop every room. */
  @OnEvent('filters.changed')
  onFiltersChanged({ roomId }: DomainEventMap['filters.changed']): void {
    this.cache.changed(roomId);
  }
}
