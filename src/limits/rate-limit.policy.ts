import { Inject, Injectable, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { Redis } from 'ioredis';
import type { Env } from '../config/env';
import { AppError, ErrorCode } from '../common/errors';
import { RateLimiter, type RateLimitResult } from '../common/rate-limiter';
import { REDIS } from '../redis/redis.module';

/**
 * The named write buckets, one counter per user each, shared by REST and the socket:
 * - send: message.send / POST /rooms/:id/messages (persona mentions are sends too)
 * - edit: message.edit, message.delete and their REST twins
 * - react: reaction.add / reaction.remove and their REST twins
 * - rooms: room.join / room.leave, POST /rooms/:id/join|leave, creating rooms, DMs and
 *   conversations, adding and removing members (each can write a system message)
 * - typing: typing.start / typing.stop
 * - read: read.mark / PUT /rooms/:id/read, following and unfollowing threads
 * - persona: persona replies triggered (mentions, conversation messages), on top of `send`;
 *   its own limit and window (PERSONA_TRIGGER_RATE_LIMIT / _WINDOW_MS)
 * - report: reports of messages (POST /messages/:id/reports, message.report); its own limit
 *   and a long window (RATE_LIMIT_REPORT / RATE_LIMIT_REPORT_WINDOW_MS)
 * - moderate: moderation and admin actions (suspensions, resolving and dismissing reports,
 *   slow mode, word-filter rules)
 * - push: pusher registrations and removals, push settings (RATE_LIMIT_PUSH)
 * - upload: attachment uploads and direct-upload creations (RATE_LIMIT_UPLOAD)
 * - admin: administration that predates moderation (creating, changing and deleting rooms,
 *   removing members, changing users, persona administration, resetting a persona's memory;
 *   RATE_LIMIT_ADMIN): a stolen admin token cannot churn the database without bound
 * - refresh: `auth.refresh` on a socket (RATE_LIMIT_REFRESH; each checks the session in the
 *   database; REST's POST /auth/refresh has the login throttle instead)
 */
export type RateBucket =
  | 'send'
  | 'edit'
  | 'react'
  | 'rooms'
  | 'typing'
  | 'read'
  | 'persona'
  | 'report'
  | 'moderate'
  | 'push'
  | 'upload'
  | 'admin'
  | 'refresh';

const ENV_OF: Record<RateBucket, keyof Env> = {
  send: 'RATE_LIMIT_SEND',
  edit: 'RATE_LIMIT_EDIT',
  react: 'RATE_LIMIT_REACT',
  rooms: 'RATE_LIMIT_ROOMS',
  typing: 'RATE_LIMIT_TYPING',
  read: 'RATE_LIMIT_READ',
  persona: 'PERSONA_TRIGGER_RATE_LIMIT',
  report: 'RATE_LIMIT_REPORT',
  moderate: 'RATE_LIMIT_MODERATE',
  push: 'RATE_LIMIT_PUSH',
  upload: 'RATE_LIMIT_UPLOAD',
  admin: 'RATE_LIMIT_ADMIN',
  refresh: 'RATE_LIMIT_REFRESH',
};

/** Buckets with a window of their own (the others use RATE_LIMIT_WINDOW_MS). */
const WINDOW_OF: Partial<Record<RateBucket, keyof Env>> = {
  persona: 'PERSONA_TRIGGER_RATE_WINDOW_MS',
  report: 'RATE_LIMIT_REPORT_WINDOW_MS',
};

/**
 * Fixed window in Redis: the first hit of a window sets its expiry. Returns [count, ms left].
 * (A key left without expiry by a crash between the two calls gets one on the next hit.)
 */
const HIT_SCRIPT = `
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}`;

type RedisWithHit = Redis & {
  parlorRateHit(key: string, windowMs: number): Promise<[number, number]>;
};

/**
 * The one rate-limit policy for user writes, on both transports: each bucket allows
 * RATE_LIMIT_<BUCKET> hits per user per RATE_LIMIT_WINDOW_MS. With REDIS_URL the counters live
 * in Redis (one limit across every instance); without it, or while Redis fails, in this
 * instance's memory. Beyond the limit: AppError RATE_LIMITED with retryAfterMs, which REST
 * answers as 429 + Retry-After and the socket as a RATE_LIMITED ack with retryAfterMs.
 */
@Injectable()
export class RateLimitPolicy {
  private readonly logger = new Logger(RateLimitPolicy.name);
  /** Read once: checked on every write, message.send included. */
  private readonly limits: Record<RateBucket, number>;
  private readonly windowMs: Record<RateBucket, number>;
  private readonly redis: RedisWithHit | null;

  constructor(
    @Inject(REDIS) redis: Redis | null,
    private readonly memory: RateLimiter,
    config: ConfigService<Env, true>,
  ) {
    const window = config.get('RATE_LIMIT_WINDOW_MS', { infer: true });
    const buckets = Object.keys(ENV_OF) as RateBucket[];
    this.limits = Object.fromEntries(
      buckets.map((b) => [b, Number(config.get(ENV_OF[b], { infer: true }))]),
    ) as Record<RateBucket, number>;
    this.windowMs = Object.fromEntries(
      buckets.map((b) => {
        const own = WINDOW_OF[b];
        return [b, own ? Number(config.get(own, { infer: true })) : window];
      }),
    ) as Record<RateBucket, number>;
    if (redis && !('parlorRateHit' in redis)) {
      redis.defineCommand('parlorRateHit', { numberOfKeys: 1, lua: HIT_SCRIPT });
    }
    this.redis = redis as RedisWithHit | null;
  }

  limit(bucket: RateBucket): number {
    return this.limits[bucket];
  }

  /**
   * Counts one write by `userId` in `bucket`; throws RATE_LIMITED beyond the limit. Without
   * Redis it answers synchronously (undefined: allowed), so the hot path awaits nothing.
   */
  check(bucket: RateBucket, userId: string): Promise<void> | undefined {
    if (!this.redis) {
      refuseIfOver(this.hitMemory(bucket, userId));
      return undefined;
    }
    return this.hitShared(this.redis, bucket, userId).then(refuseIfOver);
  }

  /** Like `check`, but answers instead of throwing (for callers that refuse in their own way). */
  hit(bucket: RateBucket, userId: string): Promise<RateLimitResult> {
    return this.redis
      ? this.hitShared(this.redis, bucket, userId)
      : Promise.resolve(this.hitMemory(bucket, userId));
  }

  private hitMemory(bucket: RateBucket, userId: string): RateLimitResult {
    return this.memory.hit(`${bucket}:${userId}`, this.limits[bucket], this.windowMs[bucket]);
  }

  private async hitShared(
    redis: RedisWithHit,
    bucket: RateBucket,
    userId: string,
  ): Promise<RateLimitResult> {
    try {
      const [count, ttl] = await redis.parlorRateHit(
        `parlor:rl:${bucket}:${userId}`,
        this.windowMs[bucket],
      );
      return count <= this.limits[bucket]
        ? ALLOWED
        : { allowed: false, retryAfterMs: Math.max(1, ttl) };
    } catch (err) {
      this.logger.debug(`rate limits degraded to this instance: ${(err as Error).message}`);
      return this.hitMemory(bucket, userId);
    }
  }
}

const ALLOWED: RateLimitResult = { allowed: true, retryAfterMs: 0 };

function refuseIfOver({ allowed, retryAfterMs }: RateLimitResult): void {
  if (!allowed)
    throw new AppError(ErrorCode.RATE_LIMITED, 'Too many requests', undefined, retryAfterMs);
}
