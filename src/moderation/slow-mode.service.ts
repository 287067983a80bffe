import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { AccessPolicy } from '../access/access.policy';
import { AppError, ErrorCode } from '../common/errors';
import { REDIS } from '../redis/redis.module';
import { RoomSettingsCache } from './room-settings.cache';

/** A slow-mode slot: taken (release it if nothing was posted after all), or refused. */
export type SlowModeClaim =
  { ok: true; release: () => void } | { ok: false; retryAfterMs: number; intervalMs: number };

const TAKEN: SlowModeClaim = { ok: true, release: () => undefined };

/** Takes the slot for PX ms unless it is held; answers 0, or the ms left on the holder's slot. */
const CLAIM_SCRIPT = `
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 1 then return 1 end
return ttl`;

/** Frees a slot only if it is still the one this claim took. */
const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

type RedisWithSlots = Redis & {
  parlorSlowClaim(key: string, token: string, ms: number): Promise<number>;
  parlorSlowRelease(key: string, token: string): Promise<number>;
};

/**
 * Slow mode: one message per interval per (room, author), over every socket and REST of the
 * user and every instance. The slot is claimed before the insert (`SET NX PX` in Redis when
 * REDIS_URL is set, this instance's memory otherwise or while Redis fails) and released when
 * nothing new was posted (an idempotent retry, a refused insert). The interval is part of the
 * key, so a changed interval starts afresh.
 *
 * Moderators (and the room's owner, and admins) are exempt; that is asked only when a claim is
 * refused, so a member's send costs no query for it.
 */
@Injectable()
export class SlowModeService implements OnModuleDestroy {
  private readonly logger = new Logger(SlowModeService.name);
  private readonly memory = new Map<string, { token: string; until: number }>();
  private readonly sweeper = setInterval(() => this.sweep(), 60_000).unref();
  private readonly origin = randomUUID();
  private seq = 0;
  private readonly redis: RedisWithSlots | null;

  constructor(
    @Inject(REDIS) redis: Redis | null,
    private readonly settings: RoomSettingsCache,
    private readonly access: AccessPolicy,
  ) {
    if (redis && !('parlorSlowClaim' in redis)) {
      redis.defineCommand('parlorSlowClaim', { numberOfKeys: 1, lua: CLAIM_SCRIPT });
      redis.defineCommand('parlorSlowRelease', { numberOfKeys: 1, lua: RELEASE_SCRIPT });
    }
    this.redis = redis as RedisWithSlots | null;
  }

  onModuleDestroy(): void {
    clearInterval(this.sweeper);
  }

  /**
   * Claims `actor`'s slot in the room (`u:<userId>` for people, `p:<personaId>` for personas).
   * With slow mode off it answers at once, without awaiting anything.
   */
  claim(roomId: string, actor: string, intervalMs: number): SlowModeClaim | Promise<SlowModeClaim> {
    if (intervalMs <= 0) return TAKEN;
    const key = `parlor:slow:${roomId}:${intervalMs}:${actor}`;
    const token = `${this.origin}:${++this.seq}`;
    if (!this.redis) return this.claimMemory(key, token, intervalMs);
    const redis = this.redis;
    return redis.parlorSlowClaim(key, token, intervalMs).then(
      (left): SlowModeClaim =>
        left === 0
          ? { ok: true, release: () => void redis.parlorSlowRelease(key, token).catch(() => 0) }
          : { ok: false, retryAfterMs: left, intervalMs },
      (err: Error) => {
        this.logger.debug(`slow mode degraded to this instance: ${err.message}`);
        return this.claimMemory(key, token, intervalMs);
      },
    );
  }

  /**
   * A refused claim: passes when the user may moderate the room (exempt), else throws
   * RATE_LIMITED with `retryAfterMs`. A room the user may not see stays a 404.
   */
  async exemptOrRefuse(
    user: { id: string },
    roomId: string,
    refused: { retryAfterMs: number; intervalMs: number },
  ): Promise<void> {
    try {
      await this.access.room(user, roomId, 'moderate');
    } catch (err) {
      if (err instanceof AppError && err.code === ErrorCode.FORBIDDEN) throw refusal(refused);
      throw err;
    }
  }

  /**
   * Waits for a persona's slot in the room (persona replies count against slow mode like any
   * member's messages). False when the wait would exceed `maxWaitMs`, or `signal` aborted.
   */
  async waitForSlot(
    roomId: string,
    actor: string,
    maxWaitMs: number,
    signal: AbortSignal,
  ): Promise<boolean> {
    const deadline = Date.now() + maxWaitMs;
    for (;;) {
      const { slowModeMs } = await this.settings.get(roomId);
      const claim = await this.claim(roomId, actor, slowModeMs);
      if (claim.ok) return true;
      if (Date.now() + claim.retryAfterMs > deadline) return false;
      try {
        await sleep(claim.retryAfterMs, undefined, { signal });
      } catch {
        return false;
      }
    }
  }

  private claimMemory(key: string, token: string, intervalMs: number): SlowModeClaim {
    const now = Date.now();
    const held = this.memory.get(key);
    if (held && held.until > now) return { ok: false, retryAfterMs: held.until - now, intervalMs };
    this.memory.set(key, { token, until: now + intervalMs });
    return {
      ok: true,
      release: () => {
        if (this.memory.get(key)?.token === token) this.memory.delete(key);
      },
    };
  }

  private sweep(now = Date.now()): void {
    for (const [key, slot] of this.memory) if (slot.until <= now) this.memory.delete(key);
  }
}

function refusal({ retryAfterMs, intervalMs }: { retryAfterMs: number; intervalMs: number }) {
  return new AppError(
    ErrorCode.RATE_LIMITED,
    `Slow mode: one message every ${seconds(intervalMs)} in this room; try again in ${seconds(retryAfterMs)}`,
    { slowModeMs: intervalMs },
    retryAfterMs,
  );
}

function seconds(ms: number): string {
  const s = Math.max(1, Math.ceil(ms / 1000));
  return `${s} s`;
}
