import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { Env } from '../config/env';
import { AppError, ErrorCode } from '../common/errors';
import { FairScheduler } from './fair-scheduler';
import type { CommandLimits } from './limits.decorators';
import { RateLimitPolicy } from './rate-limit.policy';

/** How soon a client refused for having too much in flight may try again. */
const INFLIGHT_RETRY_MS = 100;

/**
 * Every authenticated unit of work, socket command or REST request, runs through `run`:
 *
 * 1. caps: at most WS_MAX_INFLIGHT_PER_SOCKET commands per socket and USER_MAX_INFLIGHT per
 *    user across all their sockets and REST requests (beyond: RATE_LIMITED at once);
 * 2. the handler's rate-limit bucket (RateLimitPolicy), if it is a write;
 * 3. a slot of the fair database budget (FairScheduler, DB_FAIR_CONCURRENCY), so one user's
 *    flood of reads waits its turn instead of filling the pool ahead of everyone else.
 *
 * It also counts what runs, so graceful shutdown can wait for it (`drain`). The caps are per
 * instance. Every step is O(1); without Redis nothing here allocates a promise of its own.
 */
@Injectable()
export class CommandTracker {
  private inFlight = 0;
  private readonly bySocket = new Map<string, number>();
  private readonly byUser = new Map<string, number>();
  private readonly maxPerSocket: number;
  private readonly maxPerUser: number;
  readonly scheduler: FairScheduler;

  constructor(
    private readonly rateLimits: RateLimitPolicy,
    config: ConfigService<Env, true>,
  ) {
    this.maxPerSocket = config.get('WS_MAX_INFLIGHT_PER_SOCKET', { infer: true });
    this.maxPerUser = config.get('USER_MAX_INFLIGHT', { infer: true });
    const budget = config.get('DB_FAIR_CONCURRENCY', { infer: true });
    this.scheduler = new FairScheduler(
      budget > 0
        ? budget
        : Math.max(
            1,
            config.get('DATABASE_POOL_SIZE', { infer: true }) -
              config.get('SEND_BATCH_CONCURRENCY', { infer: true }),
          ),
    );
  }

  /** Work running now, on every transport. */
  get running(): number {
    return this.inFlight;
  }

  async run<T>(
    userId: string,
    socketId: string | undefined,
    limits: CommandLimits,
    work: () => Promise<T>,
  ): Promise<T> {
    const mine = socketId === undefined ? 0 : (this.bySocket.get(socketId) ?? 0);
    if (mine >= this.maxPerSocket) throw tooMany('Too many commands in flight on this socket');
    const theirs = this.byUser.get(userId) ?? 0;
    if (theirs >= this.maxPerUser) throw tooMany('Too many requests in flight for this user');
    this.inFlight++;
    this.byUser.set(userId, theirs + 1);
    if (socketId !== undefined) this.bySocket.set(socketId, mine + 1);
    let slot = false;
    try {
      if (limits.bucket) {
        const shared = this.rateLimits.check(limits.bucket, userId);
        if (shared) await shared;
      }
      if (limits.dbBound) {
        if (!this.scheduler.tryAcquire()) await this.scheduler.wait(userId);
        slot = true;
      }
      return await work();
    } finally {
      if (slot) this.scheduler.release();
      this.inFlight--;
      decrement(this.byUser, userId);
      if (socketId !== undefined) decrement(this.bySocket, socketId);
    }
  }

  /** Resolves when nothing runs any more, or at `deadline` (ms since epoch); true if drained. */
  async drain(deadline: number): Promise<boolean> {
    while (this.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.inFlight === 0;
  }
}

function decrement(counts: Map<string, number>, key: string): void {
  const left = (counts.get(key) ?? 1) - 1;
  if (left > 0) counts.set(key, left);
  else counts.delete(key);
}

function tooMany(message: string): AppError {
  return new AppError(ErrorCode.RATE_LIMITED, message, undefined, INFLIGHT_RETRY_MS);
}
