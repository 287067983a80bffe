import { SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { RateBucket } from './rate-limit.policy';

const RATE_BUCKET = 'parlor:rate-bucket';
const NOT_DB_BOUND = 'parlor:not-db-bound';

/**
 * This REST route or socket command is a write counted in `bucket` of the one per-user
 * rate-limit policy (RateLimitPolicy). Put the same bucket on both transports' twins.
 */
export const RateLimit = (bucket: RateBucket) => SetMetadata(RATE_BUCKET, bucket);

/**
 * This route or command does not wait for a slot of the fair database budget: it touches no
 * database (typing), or its writes are already bounded elsewhere (message.send: group commit
 * writes at most SEND_BATCH_CONCURRENCY batches at once, and holding a budget slot per send
 * would cap every batch at the budget's size). It still counts towards USER_MAX_INFLIGHT.
 */
export const NotDbBound = () => SetMetadata(NOT_DB_BOUND, true);

/** What the limits need to know about one handler, read once per handler. */
export interface CommandLimits {
  bucket: RateBucket | undefined;
  dbBound: boolean;
}

const reflector = new Reflector();
const cache = new WeakMap<object, CommandLimits>();

export function commandLimitsOf(handler: object): CommandLimits {
  let limits = cache.get(handler);
  if (!limits) {
    limits = {
      bucket: reflector.get<RateBucket | undefined>(RATE_BUCKET, handler as never),
      dbBound: !reflector.get<boolean | undefined>(NOT_DB_BOUND, handler as never),
    };
    cache.set(handler, limits);
  }
  return limits;
}
