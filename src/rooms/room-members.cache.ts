import { Injectable, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { OnEvent } from '@nestjs/event-emitter';
import type { Env } from '../config/env';
import type { DomainEventMap } from '../events/domain-events';
import { RedisChannels } from '../redis/redis-channels';
import { SharedCache } from '../redis/shared-cache';
import { RoomStore } from './room.store';

/** A member as a mention names them. */
export interface RoomMember {
  userId: string;
  username: string;
}

/**
 * A room's members: by lower-cased username (mentions), every member's id, and whether some
 * member is told of every message (so an ordinary message may notify someone).
 */
export interface RoomMembers {
  byName: Map<string, RoomMember>;
  ids: string[];
  someNotifiedOfAll: boolean;
}

/** Redis channel telling the other instances to drop a room's members. */
export const ROOM_MEMBERS_CHANNEL = 'parlor:room-members';

/**
 * Each active room's members in memory, so resolving `@username` costs no query per message:
 * a room is read once, on first need (RoomStore.memberNames), then served from memory until a
 * membership change drops it (a SharedCache):
 * - on this instance, by the domain event (`member.joined`, `member.left`, `member.banned`,
 *   `room.deleted`; usernames never change), and by `changed` when a member's notification
 *   level changes (RoomsService.setNotify);
 * - on the others, by a message on the Redis channel `parlor:room-members`;
 * - whatever happens, after ROOM_MEMBERS_CACHE_TTL_MS.
 * At most ROOM_MEMBERS_CACHE_ROOMS rooms are held.
 */
@Injectable()
export class RoomMembersCache implements OnModuleInit, OnModuleDestroy {
  private readonly cache: SharedCache<RoomMembers>;

  constructor(store: RoomStore, channels: RedisChannels, config: ConfigService<Env, true>) {
    this.cache = new SharedCache({
      channel: ROOM_MEMBERS_CHANNEL,
      ttlMs: config.get('ROOM_MEMBERS_CACHE_TTL_MS', { infer: true }),
      maxKeys: config.get('ROOM_MEMBERS_CACHE_ROOMS', { infer: true }),
      channels,
      load: async (roomId) => {
        const rows = await store.memberNames(roomId);
        return {
          byName: new Map(
            rows.map(({ userId, username }) => [username.toLowerCase(), { userId, username }]),
          ),
          ids: rows.map((m) => m.userId),
          someNotifiedOfAll: rows.some((m) => m.notifiedOfAll),
        };
      },
    });
  }

  onModuleInit(): void {
    this.cache.start();
  }

  onModuleDestroy(): void {
    this.cache.stop();
  }

  /** The room's members: from memory (synchronously) when held, else read once. */
  get(roomId: string): RoomMembers | Promise<RoomMembers> {
    return this.cache.get(roomId);
  }

  /** A member's notification level changed: read the room again, here and everywhere. */
  changed(roomId: string): void {
    this.cache.changed(roomId);
  }

  @OnEvent('member.joined')
  onJoined({ roomId }: DomainEventMap['member.joined']): void {
    this.cache.changed(roomId);
  }

  @OnEvent('member.left')
  onLeft({ roomId }: DomainEventMap['member.left']): void {
    this.cache.changed(roomId);
  }

  @OnEvent('member.banned')
  onBanned({ roomId }: DomainEventMap['member.banned']): void {
    this.cache.changed(roomId);
  }

  @OnEvent('room.deleted')
  onDeleted({ roomId }: DomainEventMap['room.deleted']): void {
    this.cache.changed(roomId);
  }
}
