import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { updatedRows } from '../common/sql';
import type { AuditAction, AuditTargetType } from '../common/wire';

/** One audit row as written. `instance` is filled in by AuditService. */
export interface AuditRow {
  actorId: string | null;
  action: AuditAction;
  targetType: AuditTargetType;
  targetId: string;
  roomId?: string | null;
  reason?: string;
  details?: Record<string, unknown>;
  instance: string;
}

/** What a read selects (every field optional, all ANDed). */
export interface AuditFilter {
  actorId?: string;
  targetId?: string;
  action?: AuditAction[];
  roomId?: string;
  /** ISO times: at >= from, at < to. */
  from?: string;
  to?: string;
}

/** One audit row as read, with the actor's current username (null when the account is gone). */
export interface AuditRecord extends Required<AuditRow> {
  id: number;
  at: Date;
  roomId: string | null;
  actorUsername: string | null;
}

/** Only one instance deletes old rows at a time (the others skip that round). */
const RETENTION_LOCK = `SELECT pg_try_advisory_xact_lock(hashtextextended('parlor:audit_retention', 0)) AS locked`;

/**
 * The audit_log table: append-only (a trigger refuses UPDATE, and DELETE outside the retention
 * job). Only this store writes it.
 */
@Injectable()
export class AuditStore {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /** Written in the caller's transaction when given, so the record commits with the action. */
  async append(row: AuditRow, em?: EntityManager): Promise<void> {
    await (em ?? this.db).query(
      `INSERT INTO audit_log (actor_id, action, target_type, target_id, room_id, reason, details, instance)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [
        row.actorId,
        row.action,
        row.targetType,
        row.targetId,
        row.roomId ?? null,
        row.reason ?? '',
        JSON.stringify(row.details ?? {}),
        row.instance,
      ],
    );
  }

  /**
   * Newest first, ids below `before`: one keyset page. Named cross-module read (users.username
   * of the actor, as it is now).
   */
  async page(
    filter: AuditFilter,
    before: number | undefined,
    limit: number,
  ): Promise<AuditRecord[]> {
    const params: unknown[] = [];
    const where: string[] = [];
    const add = (sql: string, value: unknown) => {
      params.push(value);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (filter.actorId) add('a.actor_id = ?', filter.actorId);
    if (filter.targetId) add('a.target_id = ?', filter.targetId);
    if (filter.action?.length) add('a.action = ANY(?::varchar[])', filter.action);
    if (filter.roomId) add('a.room_id = ?', filter.roomId);
    if (filter.from) add('a.at >= ?::timestamptz', filter.from);
    if (filter.to) add('a.at < ?::timestamptz', filter.to);
    if (before !== undefined) add('a.id < ?', before);
    params.push(limit);
    const rows = await this.db.query<
      {
        id: string;
        at: Date;
        actor_id: string | null;
        actor_username: string | null;
        action: AuditAction;
        target_type: AuditTargetType;
        target_id: string;
        room_id: string | null;
        reason: string;
        details: Record<string, unknown>;
        instance: string;
      }[]
    >(
      `SELECT a.id, a.at, a.actor_id, u.username AS actor_username, a.action, a.target_type,
              a.target_id, a.room_id, a.reason, a.details, a.instance
         FROM audit_log a
         LEFT JOIN users u ON u.id = a.actor_id
        ${where.length ? 'WHERE ' + where.join(' AND ') : ''}
        ORDER BY a.id DESC
        LIMIT $${params.length}`,
      params,
    );
    return rows.map((r) => ({
      id: Number(r.id),
      at: r.at,
      actorId: r.actor_id,
      actorUsername: r.actor_username,
      action: r.action,
      targetType: r.target_type,
      targetId: r.target_id,
      roomId: r.room_id,
      reason: r.reason,
      details: r.details,
      instance: r.instance,
    }));
  }

  /**
   * Retention: deletes at most `limit` rows older than `cutoff`, oldest first, in a transaction
   * that sets `parlor.audit_retention` (the one DELETE the trigger lets through). Null when
   * another instance is deleting right now (it holds the advisory lock).
   */
  async deleteOlderThan(cutoff: Date, limit: number): Promise<number | null> {
    return this.db.transaction(async (em) => {
      const [{ locked }] = await em.query<{ locked: boolean }[]>(RETENTION_LOCK);
      if (!locked) return null;
      await em.query(`SELECT set_config('parlor.audit_retention', 'on', true)`);
      const deleted = await em.query<unknown>(
        `DELETE FROM audit_log WHERE id IN
           (SELECT id FROM audit_log WHERE at < $1 ORDER BY at LIMIT $2)`,
        [cutoff, limit],
      );
      return updatedRows(deleted);
    });
  }
}
