import { BeforeApplicationShutdown, Injectable, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { OnEvent } from '@nestjs/event-emitter';
import type { AuthUser } from '../auth/auth-user';
import { AppError, ErrorCode } from '../common/errors';
import { Presence } from '../common/presence';
import type { Env } from '../config/env';
import type { DomainEventMap } from '../events/domain-events';
import { MetricsService } from '../metrics/metrics.service';
import type { CreatePusherDto, PusherDto, PushSettingsDto } from './dto/push.dto';
import { renderPushes } from './push-payload';
import { pushUrlRules, validatePushUrl, type PushUrlRules } from './push-url';
import { PushWorker } from './push-worker.service';
import { type OutboxEntry, PushStore, type PusherRow } from './push.store';

/**
 * Push for phones (the Matrix pusher model): devices register pushers, each tied to the login
 * session that registered it (gone when that session ends); each new notification
 * whose recipient has no live socket on any instance becomes one outbox row per pusher, which
 * the PushWorker delivers. Off (503 on registration, nothing enqueued) without PUSH_HMAC_SECRET.
 */
@Injectable()
export class PushService implements BeforeApplicationShutdown {
  private readonly logger = new Logger(PushService.name);
  private readonly enabled: boolean;
  private readonly rules: PushUrlRules;
  private readonly maxPushers: number;
  private readonly maxAgeMs: number;
  /** Notification ids from events, written in one batch per tick. */
  private pending: string[] = [];
  private flushing: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: PushStore,
    private readonly presence: Presence,
    private readonly worker: PushWorker,
    private readonly metrics: MetricsService,
    config: ConfigService<Env, true>,
  ) {
    this.enabled = Boolean(config.get('PUSH_HMAC_SECRET', { infer: true }));
    this.rules = pushUrlRules(config);
    this.maxPushers = config.get('PUSH_MAX_PUSHERS_PER_USER', { infer: true });
    this.maxAgeMs = config.get('PUSH_MAX_AGE_MS', { infer: true });
  }

  async register(user: AuthUser, dto: CreatePusherDto): Promise<PusherDto> {
    this.requireEnabled();
    await validatePushUrl(dto.url, this.rules);
    const row = await this.store.upsertPusher(
      user.id,
      user.sessionId,
      {
        kind: dto.kind,
        url: dto.url,
        appId: dto.appId,
        pushKey: dto.pushKey,
        deviceName: dto.deviceName ?? '',
        lang: dto.lang ?? 'en',
      },
      this.maxPushers,
    );
    if (row === 'session-ended') throw AppError.unauthorized('Session has ended');
    if (row === 'full')
      throw AppError.conflict(
        `At most ${this.maxPushers} pushers per user: delete one first (PUSH_MAX_PUSHERS_PER_USER)`,
      );
    return toDto(row);
  }

  async list(user: AuthUser): Promise<PusherDto[]> {
    return (await this.store.listPushers(user.id)).map(toDto);
  }

  /** Only one's own (another user's pusher is a 404, as if it did not exist). */
  async remove(user: AuthUser, id: string): Promise<void> {
    if (!(await this.store.deletePusher(user.id, id))) throw AppError.notFound('Pusher');
  }

  async settings(user: AuthUser): Promise<PushSettingsDto> {
    return { hideContent: await this.store.hideContent(user.id) };
  }

  async updateSettings(user: AuthUser, dto: PushSettingsDto): Promise<PushSettingsDto> {
    await this.store.setHideContent(user.id, dto.hideContent);
    return { hideContent: dto.hideContent };
  }

  /**
   * Writes the pushes of these notifications: for each whose recipient has pushers and no live
   * socket on any instance, one outbox row per pusher (a (notification, pusher) pair already
   * there is skipped: enqueueing twice pushes once). Answers how many rows were written.
   */
  async enqueue(notificationIds: (string | number)[]): Promise<number> {
    if (!this.enabled || !notificationIds.length) return 0;
    const candidates = await this.store.candidates(notificationIds.map(String), this.maxAgeMs);
    if (!candidates.length) return 0;
    const online = new Set(
      await this.presence.onlineAmong([...new Set(candidates.map((c) => c.userId))]),
    );
    const entries: OutboxEntry[] = candidates
      .filter((c) => !online.has(c.userId))
      .flatMap((c) => renderPushes(c).map((r) => ({ notificationId: c.notificationId, ...r })));
    const written = await this.store.insertOutbox(entries);
    if (written) {
      this.metrics.pushesEnqueued.inc(written);
      this.worker.kick();
    }
    return written;
  }

  /** Each notification event is queued; one batch per tick of the event loop is enqueued. */
  @OnEvent('notification.created')
  onNotification({ notification }: DomainEventMap['notification.created']): void {
    if (!this.enabled) return;
    this.pending.push(String(notification.id));
    if (this.pending.length === 1) setImmediate(() => this.flush());
  }

  /**
   * A session ended (logout, a password change ending the others, refresh-token reuse), or
   * every session of the user (no `sessionId`: disabled, suspended): the pushers it registered
   * go with their pending pushes, so a device registered with a stolen token stops receiving
   * at once. (The worker also checks the session before each POST: a lost event leaks nothing.)
   */
  @OnEvent('session.revoked')
  async onSessionRevoked({ userId, sessionId }: DomainEventMap['session.revoked']): Promise<void> {
    try {
      const deleted = await this.store.deleteSessionPushers(userId, sessionId);
      if (deleted) this.logger.log(`Removed ${deleted} pusher(s) of an ended session`);
    } catch (err) {
      this.logger.error(
        `Removing the pushers of an ended session failed: ${(err as Error).message}`,
      );
    }
  }

  private flush(): void {
    const ids = this.pending;
    this.pending = [];
    // One batch at a time, in order.
    this.flushing = this.flushing
      .then(() => this.enqueue(ids))
      .catch((err: Error) => this.logger.error(`Enqueueing pushes failed: ${err.message}`));
  }

  /** Lets the batch being written finish. */
  async beforeApplicationShutdown(): Promise<void> {
    await this.flushing;
  }

  private requireEnabled(): void {
    if (!this.enabled)
      throw new AppError(
        ErrorCode.UNAVAILABLE,
        'Push is not configured on this server (PUSH_HMAC_SECRET)',
      );
  }
}

function toDto(row: PusherRow): PusherDto {
  return {
    id: row.id,
    kind: row.kind,
    url: row.url,
    appId: row.appId,
    pushKey: row.pushKey,
    deviceName: row.deviceName,
    lang: row.lang,
    createdAt: new Date(row.createdAt).toISOString(),
  };
}
