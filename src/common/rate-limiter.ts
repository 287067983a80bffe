import { Injectable, OnModuleDestroy } from '@nestjs/common';

export interface RateLimitResult {
  allowed: boolean;
  /** When not allowed: how long until the window resets. */
  retryAfterMs: number;
}

/**
 * Fixed-window counters in memory, shared by the HTTP auth throttle and the socket send limits.
 * Limits are per instance. (@nestjs/throttler is CommonJS requiring the ESM-only
 * @nestjs/common 12, which Jest cannot load on Node 20; this is the small part we needed.)
 */
@Injectable()
export class RateLimiter implements OnModuleDestroy {
  private readonly windows = new Map<string, { count: number; resetAt: number }>();
  private readonly sweeper = setInterval(() => this.sweep(), 60_000).unref();

  hit(key: string, limit: number, windowMs: number, now = Date.now()): RateLimitResult {
    let w = this.windows.get(key);
    if (!w || w.resetAt <= now) {
      w = { count: 0, resetAt: now + windowMs };
      this.windows.set(key, w);
    }
    w.count++;
    return w.count <= limit
      ? { allowed: true, retryAfterMs: 0 }
      : { allowed: false, retryAfterMs: w.resetAt - now };
  }

  private sweep(now = Date.now()): void {
    for (const [key, w] of this.windows) if (w.resetAt <= now) this.windows.delete(key);
  }

  onModuleDestroy(): void {
    clearInterval(this.sweeper);
  }
}
