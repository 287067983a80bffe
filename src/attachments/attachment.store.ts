import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { returnedRows } from '../common/sql';
import type { AttachmentDto } from '../common/wire';
import type { AttachmentState } from './attachment.entity';

export interface AttachmentRow {
  id: string;
  room_id: string | null;
  uploader_id: string | null;
  message_id: string | null;
  state: AttachmentState;
  direct: boolean;
  name: string;
  size: string;
  content_type: string;
  sha256: string | null;
  width: number | null;
  height: number | null;
  storage_key: string;
  thumb_key: string | null;
  expires_at: Date | null;
  /** Set by `find`: the message carrying it is deleted. */
  message_deleted?: boolean;
}

/** What a finished upload records. */
export interface Finished {
  size: number;
  contentType: string;
  sha256: string;
  width: number | null;
  height: number | null;
  thumbKey: string | null;
}

/** The uploader's lock: quota checks and finishes of one user are serialized by it. */
const USER_LOCK = `SELECT pg_advisory_xact_lock(hashtextextended('attachments:' || $1::text, 0))`;

/** The thumbnail's URL path (the API's own route). */
export function thumbnailPath(id: string): string {
  return `/api/v1/attachments/${id}/thumbnail`;
}

/** A row as messages show it. */
export function toAttachmentDto(r: AttachmentRow): AttachmentDto {
  return {
    id: r.id,
    name: r.name,
    size: Number(r.size),
    contentType: r.content_type,
    width: r.width,
    height: r.height,
    thumbnail: r.thumb_key ? thumbnailPath(r.id) : null,
  };
}

/**
 * The attachments table: pure data access (the rules are AttachmentsService's). Reads
 * `messages.deleted_at` (named cross-module read: a deleted message's files are not served).
 */
@Injectable()
export class AttachmentStore {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /** Bytes the user has stored (every row not being deleted; pending rows count what they declared). */
  async usage(userId: string, manager: EntityManager = this.db.manager): Promise<number> {
    const [row] = await manager.query<{ used: string }[]>(
      `SELECT COALESCE(sum(size), 0)::bigint AS used FROM attachments
        WHERE uploader_id = $1 AND state <> 'deleting'`,
      [userId],
    );
    return Number(row.used);
  }

  /**
   * A pending row, written before any byte is stored. With `quota` (direct uploads, whose size
   * is declared), only when the user's usage plus `size` stays within it: false otherwise.
   */
  async createPending(
    a: {
      id: string;
      roomId: string;
      uploaderId: string;
      name: string;
      storageKey: string;
      direct: boolean;
      size: number;
      expiresInMs: number;
    },
    quota?: number,
  ): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      if (quota !== undefined) {
        await tx.query(USER_LOCK, [a.uploaderId]);
        if ((await this.usage(a.uploaderId, tx)) + a.size > quota) return false;
      }
      await tx.query(
        `INSERT INTO attachments (id, room_id, uploader_id, state, direct, name, size, storage_key, expires_at)
         VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, now() + $8 * interval '1 millisecond')`,
        [a.id, a.roomId, a.uploaderId, a.direct, a.name, a.size, a.storageKey, a.expiresInMs],
      );
      return true;
    });
  }

  /**
   * A pending upload becomes ready (unattached, expiring `ttlMs` later), in the uploader's
   * lock and only within the quota, while its room exists and its upload time has not run out:
   * 'quota' when the user's other rows and this size exceed it, 'room' when its room was
   * deleted meanwhile (`room_id` set null), 'gone' when its time ran out or the row is no longer
   * pending (the cleanup job took it: for its time, or for its room, which the caller asks).
   */
  finish(
    id: string,
    uploaderId: string,
    f: Finished,
    quota: number,
    ttlMs: number,
  ): Promise<AttachmentRow | 'quota' | 'room' | 'gone'> {
    return this.db.transaction(async (tx) => {
      await tx.query(USER_LOCK, [uploaderId]);
      const [used] = await tx.query<{ used: string }[]>(
        `SELECT COALESCE(sum(size), 0)::bigint AS used FROM attachments
          WHERE uploader_id = $1 AND state <> 'deleting' AND id <> $2`,
        [uploaderId, id],
      );
      if (Number(used.used) + f.size > quota) return 'quota';
      const rows = returnedRows<AttachmentRow>(
        await tx.query(
          `UPDATE attachments SET state = 'ready', size = $2, content_type = $3, sha256 = $4,
                width = $5, height = $6, thumb_key = $7,
                expires_at = now() + $8 * interval '1 millisecond'
          WHERE id = $1 AND state IN ('pending', 'processing') AND room_id IS NOT NULL
            AND expires_at > now()
          RETURNING *`,
          [id, f.size, f.contentType, f.sha256, f.width, f.height, f.thumbKey, ttlMs],
        ),
      );
      if (rows[0]) return rows[0];
      // Why not: read again in this transaction (the room's deletion may have committed since).
      const [now] = await tx.query<{ room_id: string | null }[]>(
        `SELECT room_id FROM attachments WHERE id = $1`,
        [id],
      );
      return now && now.room_id === null ? 'room' : 'gone';
    });
  }

  /**
   * A direct upload's completion claims it (pending → processing, while its upload time has
   * not run out), with a fresh lease of `leaseMs` for the copy and the checks (the cleanup job
   * takes it only when that runs out): of concurrent completions only one gets the row; the
   * others find it processing, or ready once it is done.
   */
  async claimCompletion(id: string, leaseMs: number): Promise<boolean> {
    const rows = returnedRows<{ id: string }>(
      await this.db.query(
        `UPDATE attachments SET state = 'processing',
                expires_at = now() + $2 * interval '1 millisecond'
          WHERE id = $1 AND state = 'pending' AND expires_at > now()
         RETURNING id`,
        [id, leaseMs],
      ),
    );
    return rows.length > 0;
  }

  /** A completion that found nothing uploaded gives the claim back (the client PUTs, then retries). */
  async unclaimCompletion(id: string): Promise<void> {
    await this.db.query(
      `UPDATE attachments SET state = 'pending' WHERE id = $1 AND state = 'processing'`,
      [id],
    );
  }

  /**
   * A refused or failed upload, not yet finished, is claimed for deletion now (as `claimDue`
   * does, with a lease: should deleting its objects fail, the cleanup job takes it when the lease
   * runs out). Null when it is ready (a concurrent completion finished it) or already claimed.
   */
  async abandon(id: string, leaseMs: number): Promise<AttachmentRow | null> {
    const rows = returnedRows<AttachmentRow>(
      await this.db.query(
        `UPDATE attachments SET state = 'deleting',
                expires_at = now() + $2 * interval '1 millisecond'
          WHERE id = $1 AND state IN ('pending', 'processing') RETURNING *`,
        [id, leaseMs],
      ),
    );
    return rows[0] ?? null;
  }

  /** The row, with whether its message is deleted (named read of attachments × messages). */
  async find(id: string): Promise<AttachmentRow | null> {
    const rows = await this.db.query<AttachmentRow[]>(
      `SELECT a.*, (m.deleted_at IS NOT NULL) AS message_deleted
         FROM attachments a LEFT JOIN messages m ON m.id = a.message_id
        WHERE a.id = $1`,
      [id],
    );
    return rows[0] ?? null;
  }

  /**
   * Claims the uploads for a message, in the send's transaction: only the author's own, of
   * that room, ready, unexpired and not yet used. The row lock orders two sends naming one
   * upload; the second re-checks `message_id IS NULL` after the first commits and claims
   * nothing. The rows claimed, in the order of `ids`.
   */
  async claim(
    tx: EntityManager,
    ids: string[],
    messageId: number,
    authorId: string,
    roomId: string,
  ): Promise<AttachmentDto[]> {
    const rows = returnedRows<AttachmentRow>(
      await tx.query(
        `UPDATE attachments SET message_id = $2, expires_at = NULL
        WHERE id = ANY($1::uuid[]) AND uploader_id = $3 AND room_id = $4 AND state = 'ready'
          AND message_id IS NULL AND expires_at > now()
        RETURNING *`,
        [ids, messageId, authorId, roomId],
      ),
    );
    const byId = new Map(rows.map((r) => [r.id, toAttachmentDto(r)]));
    return ids.flatMap((id) => byId.get(id) ?? []);
  }

  /** A deleted message's files become due for the cleanup job (in the tombstone's transaction). */
  async release(tx: EntityManager, messageId: number): Promise<void> {
    await tx.query(`UPDATE attachments SET expires_at = now() WHERE message_id = $1`, [messageId]);
  }

  /**
   * The cleanup job's claim: up to `limit` due rows (expired, or of a deleted room), marked
   * 'deleting' with a lease; rows another instance holds are skipped (SKIP LOCKED), and rows
   * whose lease ran out (that instance died) are due again.
   */
  async claimDue(limit: number, leaseMs: number): Promise<AttachmentRow[]> {
    return returnedRows<AttachmentRow>(
      await this.db.query(
        `UPDATE attachments a SET state = 'deleting',
              expires_at = now() + $2 * interval '1 millisecond'
         FROM (SELECT id FROM attachments
                WHERE expires_at <= now() OR (room_id IS NULL AND state <> 'deleting')
                LIMIT $1 FOR UPDATE SKIP LOCKED) due
        WHERE a.id = due.id
        RETURNING a.*`,
        [limit, leaseMs],
      ),
    );
  }

  /** Rows whose files are gone (claimed by `claimDue`). */
  async deleteClaimed(ids: string[]): Promise<void> {
    if (ids.length)
      await this.db.query(
        `DELETE FROM attachments WHERE id = ANY($1::uuid[]) AND state = 'deleting'`,
        [ids],
      );
  }

  /** Bytes stored in all (the metrics gauge). */
  async totalBytes(): Promise<number> {
    const [row] = await this.db.query<{ total: string }[]>(
      `SELECT COALESCE(sum(size), 0)::bigint AS total FROM attachments WHERE state = 'ready'`,
    );
    return Number(row.total);
  }
}
