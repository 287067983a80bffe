import {
  BeforeApplicationShutdown,
  Injectable,
  Logger,
  OnApplicationBootstrap,
} from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { Env } from '../config/env';
import { AuditStore } from './audit.store';

const HOUR_MS = 3_600_000;
/** The first round runs soon after boot (instances restarted often still purge), jittered. */
const FIRST_RUN_MS = 60_000;
/** Rows per DELETE transaction: a first purge of a large log never holds one long transaction. */
const BATCH = 5000;

/**
 * Audit retention (AUDIT_RETENTION_DAYS; 0 keeps everything): hourly, deletes entries older
 * than the retention in batches, each a transaction that sets `parlor.audit_retention` (the
 * one DELETE the append-only trigger allows). Safe with several instances: deleting old rows
 * is idempotent, and an advisory lock lets one instance at a time do it.
 */
@Injectable()
export class AuditRetention implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(AuditRetention.name);
  private readonly days: number;
  private timer?: NodeJS.Timeout;
  private running?: Promise<unknown>;

  constructor(
    private readonly store: AuditStore,
    config: ConfigService<Env, true>,
  ) {
    this.days = config.get('AUDIT_RETENTION_DAYS', { infer: true });
  }

  onApplicationBootstrap(): void {
    if (this.days === 0) return;
    this.timer = setTimeout(
      () => {
        this.tick();
        this.timer = setInterval(() => this.tick(), HOUR_MS).unref();
      },
      FIRST_RUN_MS + Math.random() * FIRST_RUN_MS,
    ).unref();
  }

  /** Stops the schedule and lets a round in progress finish (its batch commits or rolls back). */
  async beforeApplicationShutdown(): Promise<void> {
    clearTimeout(this.timer);
    clearInterval(this.timer);
    await this.running;
  }

  /**
   * One round: deletes every entry older than the retention (as of `now`); answers how many.
   * Stops early when another instance holds the lock (it is doing the same).
   */
  async purge(now = new Date()): Promise<number> {
    if (this.days === 0) return 0;
    const cutoff = new Date(now.getTime() - this.days * 86_400_000);
    let total = 0;
    for (;;) {
      const deleted = await this.store.deleteOlderThan(cutoff, BATCH);
      if (deleted === null) break;
      total += deleted;
      if (deleted < BATCH) break;
    }
    if (total) this.logger.log(`Deleted ${total} audit entries older than ${this.days} days`);
    return total;
  }

  private tick(): void {
    if (this.running) return;
    this.running = this.purge()
      .catch((err: Error) => this.logger.error(`Audit retention failed: ${err.message}`))
      .finally(() => (this.running = undefined));
  }
}
