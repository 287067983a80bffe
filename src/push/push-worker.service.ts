import {
  BeforeApplicationShutdown,
  Injectable,
  Logger,
  OnApplicationBootstrap,
} from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { AccessPolicy } from '../access/access.policy';
import type { Env } from '../config/env';
import { MetricsService } from '../metrics/metrics.service';
import { postPush, rejectedKeys } from './push-http';
import { withCurrentContent } from './push-payload';
import { pushUrlRules, type PushUrlRules } from './push-url';
import { type ClaimedPush, PushStore } from './push.store';

/** Rows claimed (and delivered concurrently) per round. */
const BATCH = 32;
/** Old rows deleted per statement. */
const SWEEP_BATCH = 1000;

/**
 * Delivers the push outbox, on every instance: claims due rows (`FOR UPDATE SKIP LOCKED`, a
 * lease of PUSH_LEASE_MS), POSTs each signed, then marks it delivered (2xx: emptied, kept for
 * dedupe until PUSH_MAX_AGE_MS), deletes its pusher (404, 410, or its key in `rejected`), or
 * schedules a retry with exponential backoff and jitter. Right before each POST the row is read
 * again as it stands now: a push whose pusher was deleted or moved to another user, whose
 * pusher's session ended, whose notification was read or whose message was deleted is dropped
 * (the pusher too, for an ended session), and the text sent is the message's current one.
 * Undelivered rows older than PUSH_MAX_AGE_MS are abandoned. Nothing is held in memory that the
 * table does not have: a restart, or a crash mid-delivery, leaves rows that become due again.
 */
@Injectable()
export class PushWorker implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(PushWorker.name);
  private readonly secret: string | undefined;
  private readonly rules: PushUrlRules;
  private readonly pollMs: number;
  private readonly leaseMs: number;
  private readonly timeoutMs: number;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly maxAgeMs: number;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  /** A kick arrived during a round: run another right after. */
  private again = false;
  private stopped = false;
  private readonly abort = new AbortController();

  constructor(
    private readonly store: PushStore,
    private readonly access: AccessPolicy,
    private readonly metrics: MetricsService,
    config: ConfigService<Env, true>,
  ) {
    this.secret = config.get('PUSH_HMAC_SECRET', { infer: true });
    this.rules = pushUrlRules(config);
    this.pollMs = config.get('PUSH_POLL_MS', { infer: true });
    this.leaseMs = config.get('PUSH_LEASE_MS', { infer: true });
    this.timeoutMs = config.get('PUSH_TIMEOUT_MS', { infer: true });
    this.baseMs = config.get('PUSH_RETRY_BASE_MS', { infer: true });
    this.maxMs = config.get('PUSH_RETRY_MAX_MS', { infer: true });
    this.maxAgeMs = config.get('PUSH_MAX_AGE_MS', { infer: true });
  }

  onApplicationBootstrap(): void {
    if (!this.secret) return;
    this.timer = setInterval(() => this.kick(), this.pollMs).unref();
    this.kick(); // rows left by a previous run
  }

  /** Stops polling, cuts deliveries in flight (their rows wait for the next instance or run). */
  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.abort.abort();
    await this.running;
  }

  /** Runs a round now (or right after the current one). */
  kick(): void {
    if (this.stopped || !this.secret) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.round()
      .catch((err: Error) => this.logger.error(`Push round failed: ${err.message}`))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Sweeps old rows (abandoned, or delivered past their dedupe window), then delivers due ones. */
  private async round(): Promise<void> {
    for (;;) {
      const swept = await this.store.sweep(this.maxAgeMs, SWEEP_BATCH);
      const abandoned = swept.filter((r) => !r.delivered);
      if (abandoned.length) {
        this.metrics.pushDeliveries.inc({ result: 'abandoned' }, abandoned.length);
        this.logger.warn(
          `Abandoned ${abandoned.length} push(es) older than ${this.maxAgeMs} ms after ` +
            `${abandoned[0].attempts} attempt(s) (last error: ${abandoned[0].lastError ?? 'none'})`,
        );
      }
      if (swept.length < SWEEP_BATCH) break;
    }
    while (!this.stopped) {
      const rows = await this.store.claimDue(BATCH, this.leaseMs);
      await Promise.all(rows.map((row) => this.deliver(row)));
      if (rows.length < BATCH) break;
    }
  }

  private async deliver(row: ClaimedPush): Promise<void> {
    // Re-checked now: a member removed since the notification gets nothing from that room.
    const readable = await this.access.readableRooms(row.userId, [row.roomId]);
    if (!readable.has(row.roomId)) return this.drop(row);
    // Last, right before the POST: the pusher is still this user's (a key moved to another
    // user since the claim must not get this user's push), its session still live, the
    // notification unread and the message there; the text is the message's as it is now.
    const now = await this.store.current(row);
    if (!now) return this.drop(row);
    if (!now.sessionLive) {
      await this.store.dropPusher(row.pusherId);
      this.metrics.pushDeliveries.inc({ result: 'dropped' });
      return;
    }
    if (now.read || now.messageGone) return this.drop(row);
    let error: string;
    try {
      const answer = await postPush(
        now.url,
        JSON.stringify(withCurrentContent(row.payload, now)),
        this.secret!,
        this.rules,
        this.timeoutMs,
        this.abort.signal,
      );
      const ok = answer.status >= 200 && answer.status < 300;
      if (
        answer.status === 404 ||
        answer.status === 410 ||
        (ok && rejectedKeys(answer.body).includes(row.pushKey))
      ) {
        await this.store.dropPusher(row.pusherId);
        this.metrics.pushDeliveries.inc({ result: 'rejected' });
        this.logger.log(`Push key gone (gateway answered ${answer.status}): pusher removed`);
        return;
      }
      if (ok) {
        await this.store.markDelivered(row.id, this.maxAgeMs);
        this.metrics.pushDeliveries.inc({ result: 'delivered' });
        return;
      }
      error = `HTTP ${answer.status}`;
    } catch (err) {
      // Shutting down: not an attempt; the row is due again at once (another instance, or this
      // one restarted, sends it).
      if (this.stopped) return this.store.release(row.id);
      error = (err as Error).message;
    }
    const delay = this.backoff(row.attempts);
    await this.store.retryLater(row.id, delay, error);
    this.metrics.pushDeliveries.inc({ result: 'failed' });
  }

  /** Not sent, and never will be: the row goes. */
  private async drop(row: ClaimedPush): Promise<void> {
    await this.store.deleteOutbox(row.id);
    this.metrics.pushDeliveries.inc({ result: 'dropped' });
  }

  /** base × 2^attempts, capped, then between half and all of it (jitter spreads retries). */
  private backoff(attempts: number): number {
    const full = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(attempts, 30));
    return full / 2 + (Math.random() * full) / 2;
  }
}
