import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { returnedRows, updatedRows } from '../common/sql';

export interface PusherInput {
  kind: 'http';
  url: string;
  appId: string;
  pushKey: string;
  deviceName: string;
  lang: string;
}

/** A pusher as stored. */
export interface PusherRow extends PusherInput {
  id: string;
  userId: string;
  /** The session that registered it (null: before sessions were recorded, legacy). */
  sessionId: string | null;
  createdAt: Date;
}

/** Why a registration was refused: the user's cap reached, or the session ended meanwhile. */
export type PusherRefusal = 'full' | 'session-ended';

/** What a push is rendered from: one notification, its recipient's pushers and counts. */
export interface PushCandidate {
  notificationId: string;
  userId: string;
  roomId: string;
  roomName: string;
  kind: string;
  messageId: string;
  senderId: string | null;
  senderUsername: string | null;
  senderDisplayName: string | null;
  unread: number;
  pushers: { id: string; appId: string; pushKey: string; lang: string }[];
}

/** One outbox row to write. */
export interface OutboxEntry {
  notificationId: string;
  pusherId: string;
  payload: unknown;
}

/** One outbox row claimed for delivery, with where it goes and whose it is. */
export interface ClaimedPush {
  id: string;
  payload: unknown;
  attempts: number;
  createdAt: Date;
  pusherId: string;
  /** At claim time (the POST goes to the URL PushStore.current reads right before it). */
  url: string;
  pushKey: string;
  userId: string;
  roomId: string;
}

/** A claimed push as it stands right before its POST (PushStore.current). */
export interface CurrentPush {
  /** Where to POST now (the device may have re-registered with another gateway URL). */
  url: string;
  /** The pusher's session is live (not revoked, not expired; a legacy NULL one counts as live). */
  sessionLive: boolean;
  /** The notification was read meanwhile. */
  read: boolean;
  /** The message was deleted (a tombstone) or is gone. */
  messageGone: boolean;
  /** The message's text now ('' when gone). */
  body: string;
  /** The recipient's push_settings.hide_content now. */
  hideContent: boolean;
}

/** The payload of a delivered row (kept for dedupe, emptied). */
const DELIVERED = `'{}'::jsonb`;

const PUSHER_COLUMNS = `id, user_id AS "userId", kind, url, app_id AS "appId", push_key AS "pushKey",
  device_name AS "deviceName", lang, session_id AS "sessionId", created_at AS "createdAt"`;

/**
 * Named cross-module read (sessions): the pusher `p`'s session is live, as the auth module
 * means it (not revoked; not expired, so it cannot be refreshed any more either). A pusher
 * without a session (registered before they were recorded) counts as live.
 */
const SESSION_LIVE = (p: string) => `(${p}.session_id IS NULL OR EXISTS (
  SELECT 1 FROM sessions live
   WHERE live.id = ${p}.session_id AND live.revoked_at IS NULL AND live.expires_at > now()))`;

/** Registrations of one user are counted under this lock (two at once cannot both pass the cap). */
const USER_LOCK = `SELECT pg_advisory_xact_lock(hashtextextended('parlor:pushers:' || $1, 0))`;
/**
 * And of one push key (taken second, always): two users registering the same key one after the
 * other, the later one's DELETE sees the earlier one's row, so the key ends with the later user.
 */
const KEY_LOCK = `SELECT pg_advisory_xact_lock(hashtextextended('parlor:pushkey:' || $1, 0))`;

/**
 * The pushers, push_settings and push_outbox tables. Only this store writes them. Reads of
 * notifications, rooms, users and messages for rendering a push are named cross-module reads.
 */
@Injectable()
export class PushStore {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /**
   * Registers (or updates) the pusher (appId, pushKey) for `userId`, as belonging to the session
   * `sessionId` (an update moves it to that session). A push key registered by another user
   * moves to this one as a new pusher (the old row and its pending pushes go: the device must
   * never get the previous user's notifications). 'full' when the user already has `max` other
   * pushers; 'session-ended' when the session is no longer live. Named cross-module read
   * (sessions): the session's row is locked FOR SHARE until commit, so a revocation committing
   * meanwhile either waits for this pusher (and its `session.revoked` then deletes it) or wins
   * (and no pusher is written).
   */
  upsertPusher(
    userId: string,
    sessionId: string,
    p: PusherInput,
    max: number,
  ): Promise<PusherRow | PusherRefusal> {
    return this.db.transaction(async (em) => {
      const live = await em.query<unknown[]>(
        `SELECT 1 FROM sessions
          WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > now()
            FOR SHARE`,
        [sessionId, userId],
      );
      if (!live.length) return 'session-ended';
      await em.query(USER_LOCK, [userId]);
      await em.query(KEY_LOCK, [`${p.appId}\n${p.pushKey}`]);
      await em.query(`DELETE FROM pushers WHERE app_id = $1 AND push_key = $2 AND user_id <> $3`, [
        p.appId,
        p.pushKey,
        userId,
      ]);
      const [{ others }] = await em.query<{ others: number }[]>(
        `SELECT count(*)::int AS others FROM pushers
          WHERE user_id = $1 AND NOT (app_id = $2 AND push_key = $3)`,
        [userId, p.appId, p.pushKey],
      );
      if (others >= max) return 'full';
      const [row] = await em.query<PusherRow[]>(
        `INSERT INTO pushers (user_id, kind, url, app_id, push_key, device_name, lang, session_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (app_id, push_key) DO UPDATE
           SET kind = EXCLUDED.kind, url = EXCLUDED.url, device_name = EXCLUDED.device_name,
               lang = EXCLUDED.lang, session_id = EXCLUDED.session_id
         RETURNING ${PUSHER_COLUMNS}`,
        [userId, p.kind, p.url, p.appId, p.pushKey, p.deviceName, p.lang, sessionId],
      );
      return row;
    });
  }

  listPushers(userId: string): Promise<PusherRow[]> {
    return this.db.query<PusherRow[]>(
      `SELECT ${PUSHER_COLUMNS} FROM pushers WHERE user_id = $1 ORDER BY created_at, id`,
      [userId],
    );
  }

  /** Deletes one of the user's pushers (its pending pushes cascade); false when none. */
  async deletePusher(userId: string, id: string): Promise<boolean> {
    return (
      updatedRows(
        await this.db.query(`DELETE FROM pushers WHERE id = $1 AND user_id = $2`, [id, userId]),
      ) > 0
    );
  }

  /**
   * A session of the user ended (`sessionId`), or all of them (absent): the pushers it
   * registered go, with their pending pushes (all of the user's pushers, legacy ones too, when
   * every session ended). Answers how many.
   */
  async deleteSessionPushers(userId: string, sessionId?: string): Promise<number> {
    return updatedRows(
      await this.db.query(
        `DELETE FROM pushers WHERE user_id = $1 AND ($2::uuid IS NULL OR session_id = $2::uuid)`,
        [userId, sessionId ?? null],
      ),
    );
  }

  /**
   * A gateway said the push key is gone (or the pusher's session ended): the pusher goes, with
   * its pending pushes.
   */
  async dropPusher(id: string): Promise<void> {
    await this.db.query(`DELETE FROM pushers WHERE id = $1`, [id]);
  }

  async hideContent(userId: string): Promise<boolean> {
    const rows = await this.db.query<{ hide: boolean }[]>(
      `SELECT hide_content AS hide FROM push_settings WHERE user_id = $1`,
      [userId],
    );
    return rows[0]?.hide ?? false;
  }

  async setHideContent(userId: string, hide: boolean): Promise<void> {
    await this.db.query(
      `INSERT INTO push_settings (user_id, hide_content) VALUES ($1, $2)
       ON CONFLICT (user_id) DO UPDATE SET hide_content = EXCLUDED.hide_content`,
      [userId, hide],
    );
  }

  /**
   * Named cross-module read (notifications × rooms × users × messages × pushers): of the given
   * notifications, those whose recipient has at least one pusher, with what a push shows.
   * `unread`: the recipient's unread notifications now, in rooms they are a member of (as
   * GET /notifications/unread-count counts them).
   */
  candidates(notificationIds: string[], maxAgeMs: number): Promise<PushCandidate[]> {
    if (!notificationIds.length) return Promise.resolve([]);
    return this.db.query<PushCandidate[]>(
      `SELECT n.id::text AS "notificationId", n.user_id AS "userId", n.room_id AS "roomId",
              r.name AS "roomName", n.kind, n.message_id::text AS "messageId",
              n.actor_id AS "senderId", a.username AS "senderUsername",
              a.display_name AS "senderDisplayName",
              (SELECT count(*)::int FROM notifications u
                 JOIN memberships um ON um.room_id = u.room_id AND um.user_id = u.user_id
                WHERE u.user_id = n.user_id AND u.read_at IS NULL) AS unread,
              p.pushers
         FROM notifications n
         JOIN rooms r ON r.id = n.room_id
         JOIN messages m ON m.id = n.message_id
         LEFT JOIN users a ON a.id = n.actor_id
         JOIN LATERAL (
           SELECT json_agg(json_build_object('id', id, 'appId', app_id, 'pushKey', push_key, 'lang', lang)
                           ORDER BY created_at, id) AS pushers
             FROM pushers q WHERE q.user_id = n.user_id AND ${SESSION_LIVE('q')}
         ) p ON p.pushers IS NOT NULL
        WHERE n.id = ANY($1::bigint[])
          AND n.created_at > now() - $2::bigint * interval '1 millisecond'
        ORDER BY n.id`,
      [notificationIds, maxAgeMs],
    );
  }

  /**
   * Writes the rows; a (notification, pusher) pair already there is skipped, and so is one
   * whose pusher or notification was deleted meanwhile (the key-share locks make that a skip,
   * not a foreign-key error failing the batch). Answers how many were written.
   */
  async insertOutbox(entries: OutboxEntry[]): Promise<number> {
    if (!entries.length) return 0;
    const rows = await this.db.query<{ id: string }[]>(
      `INSERT INTO push_outbox (notification_id, pusher_id, payload)
       SELECT e.notification_id, e.pusher_id, e.payload
         FROM jsonb_to_recordset($1::jsonb)
              AS e(notification_id bigint, pusher_id uuid, payload jsonb)
         JOIN pushers p ON p.id = e.pusher_id
         JOIN notifications n ON n.id = e.notification_id
          FOR KEY SHARE OF p, n
       ON CONFLICT (notification_id, pusher_id) DO NOTHING
       RETURNING id`,
      [
        JSON.stringify(
          entries.map((e) => ({
            notification_id: e.notificationId,
            pusher_id: e.pusherId,
            payload: e.payload,
          })),
        ),
      ],
    );
    return rows.length;
  }

  /**
   * Claims up to `limit` due rows for this instance: one short statement (`FOR UPDATE SKIP
   * LOCKED`, so instances never claim the same row) that pushes their next attempt `leaseMs`
   * ahead. Delivered rows are deleted; a row whose instance died becomes due again when the
   * lease runs out.
   */
  async claimDue(limit: number, leaseMs: number): Promise<ClaimedPush[]> {
    const result: unknown = await this.db.query(
      `WITH due AS (
         SELECT id FROM push_outbox WHERE next_attempt_at <= now() AND payload <> ${DELIVERED}
          ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
       UPDATE push_outbox o
          SET next_attempt_at = now() + $2::int * interval '1 millisecond'
         FROM due, pushers p, notifications n
        WHERE o.id = due.id AND p.id = o.pusher_id AND n.id = o.notification_id
       RETURNING o.id::text AS id, o.payload, o.attempts, o.created_at AS "createdAt",
                 p.id AS "pusherId", p.url, p.push_key AS "pushKey", p.user_id AS "userId",
                 n.room_id AS "roomId"`,
      [limit, leaseMs],
    );
    return returnedRows<ClaimedPush>(result);
  }

  /**
   * Named cross-module read (notifications × messages × sessions), right before a claimed push
   * is POSTed: the row as it stands now, or null when it is gone, or when its pusher no longer
   * is the one claimed for that user (deleted, or its key moved to another user meanwhile: the
   * device is someone else's now). Primary keys only: cheap.
   */
  async current(row: ClaimedPush): Promise<CurrentPush | null> {
    const rows = await this.db.query<CurrentPush[]>(
      `SELECT p.url, ${SESSION_LIVE('p')} AS "sessionLive", n.read_at IS NOT NULL AS read,
              (m.id IS NULL OR m.deleted_at IS NOT NULL) AS "messageGone",
              CASE WHEN m.deleted_at IS NULL THEN coalesce(m.content, '') ELSE '' END AS body,
              coalesce(s.hide_content, false) AS "hideContent"
         FROM push_outbox o
         JOIN pushers p ON p.id = o.pusher_id
         JOIN notifications n ON n.id = o.notification_id
         LEFT JOIN messages m ON m.id = n.message_id
         LEFT JOIN push_settings s ON s.user_id = p.user_id
        WHERE o.id = $1 AND p.id = $2 AND p.user_id = $3 AND n.user_id = $3`,
      [row.id, row.pusherId, row.userId],
    );
    return rows[0] ?? null;
  }

  async deleteOutbox(id: string): Promise<void> {
    await this.db.query(`DELETE FROM push_outbox WHERE id = $1`, [id]);
  }

  /**
   * Delivered: the row stays, emptied (no message text kept), until `maxAgeMs` after it was
   * written, so the same notification enqueued again is still a duplicate; then the sweep
   * (`sweep`) deletes it, found by the due index like any row whose time has come.
   */
  async markDelivered(id: string, maxAgeMs: number): Promise<void> {
    await this.db.query(
      `UPDATE push_outbox
          SET payload = ${DELIVERED}, last_error = NULL,
              next_attempt_at = created_at + $2::bigint * interval '1 millisecond'
        WHERE id = $1`,
      [id, maxAgeMs],
    );
  }

  /** Gives a claimed row back unattempted: due now. */
  async release(id: string): Promise<void> {
    await this.db.query(`UPDATE push_outbox SET next_attempt_at = now() WHERE id = $1`, [id]);
  }

  /** A failed attempt: counted, and due again after `delayMs`. */
  async retryLater(id: string, delayMs: number, error: string): Promise<void> {
    await this.db.query(
      `UPDATE push_outbox
          SET attempts = attempts + 1,
              next_attempt_at = now() + $2::int * interval '1 millisecond',
              last_error = $3
        WHERE id = $1`,
      [id, Math.round(delayMs), error.slice(0, 500)],
    );
  }

  /**
   * Deletes up to `limit` due rows written more than `maxAgeMs` ago: delivered ones whose
   * dedupe window is over, and undelivered ones given up on (`delivered` false). Through the
   * due index: never a scan of the whole outbox.
   */
  async sweep(
    maxAgeMs: number,
    limit: number,
  ): Promise<{ id: string; delivered: boolean; attempts: number; lastError: string | null }[]> {
    const result: unknown = await this.db.query(
      `DELETE FROM push_outbox WHERE id IN (
         SELECT id FROM push_outbox
          WHERE next_attempt_at <= now()
            AND created_at <= now() - $1::bigint * interval '1 millisecond'
          ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
       RETURNING id::text AS id, payload = ${DELIVERED} AS delivered, attempts,
                 last_error AS "lastError"`,
      [maxAgeMs, limit],
    );
    return returnedRows(result);
  }
}
