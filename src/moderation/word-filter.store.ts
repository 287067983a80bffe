import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { isForeignKeyViolation } from '../common/pg-errors';
import type { FilterAction, FilterRule } from './word-filter';

export interface WordFilterRow extends FilterRule {
  createdBy: string | null;
  createdAt: Date;
}

const COLUMNS = `id, room_id AS "roomId", pattern, action, created_by AS "createdBy", created_at AS "createdAt"`;

/**
 * The word_filters table (a rule of a room, or global when room_id is null). Only this store
 * reads or writes it.
 */
@Injectable()
export class WordFilterStore {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /** A room's rules (null: the global ones), oldest first. */
  list(roomId: string | null): Promise<WordFilterRow[]> {
    return this.db.query<WordFilterRow[]>(
      `SELECT ${COLUMNS} FROM word_filters WHERE room_id IS NOT DISTINCT FROM $1::uuid
        ORDER BY created_at, id`,
      [roomId],
    );
  }

  /** What a room's messages are screened with: its own rules and the global ones. */
  rulesFor(roomId: string): Promise<FilterRule[]> {
    return this.db.query<FilterRule[]>(
      `SELECT id, room_id AS "roomId", pattern, action FROM word_filters
        WHERE room_id = $1 OR room_id IS NULL ORDER BY room_id NULLS FIRST, created_at, id`,
      [roomId],
    );
  }

  /**
   * Adds a rule in `em` unless its list already holds `max` (the list's lock makes the count
   * and the insert one step under concurrent adds). 'duplicate': the same pattern is there;
   * 'gone': the room was deleted.
   */
  async insert(
    em: EntityManager,
    rule: { roomId: string | null; pattern: string; action: FilterAction; createdBy: string },
    max: number,
  ): Promise<WordFilterRow | 'limit' | 'duplicate' | 'gone'> {
    await em.query(`SELECT pg_advisory_xact_lock(hashtext('word_filters:' || $1::text))`, [
      rule.roomId ?? 'global',
    ]);
    const [{ n }] = await em.query<{ n: number }[]>(
      `SELECT count(*)::int AS n FROM word_filters WHERE room_id IS NOT DISTINCT FROM $1::uuid`,
      [rule.roomId],
    );
    if (n >= max) return 'limit';
    try {
      const rows = await em.query<WordFilterRow[]>(
        `INSERT INTO word_filters (room_id, pattern, action, created_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT ON CONSTRAINT word_filters_room_pattern DO NOTHING
         RETURNING ${COLUMNS}`,
        [rule.roomId, rule.pattern, rule.action, rule.createdBy],
      );
      return rows[0] ?? 'duplicate';
    } catch (err) {
      // The room was deleted since the caller looked (its rules go with it).
      if (isForeignKeyViolation(err)) return 'gone';
      throw err;
    }
  }

  /** Deletes a rule of that list in `em`; null when there is none with that id. */
  async remove(
    em: EntityManager,
    roomId: string | null,
    id: string,
  ): Promise<WordFilterRow | null> {
    const rows = await em.query<[WordFilterRow[], number]>(
      `DELETE FROM word_filters WHERE id = $1 AND room_id IS NOT DISTINCT FROM $2::uuid
       RETURNING ${COLUMNS}`,
      [id, roomId],
    );
    return rows[0][0] ?? null;
  }
}
