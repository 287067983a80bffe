import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { isForeignKeyViolation } from '../common/pg-errors';
import { returnedRows, updatedRows } from '../common/sql';

/** A persona's summary of a room's older history, as stored. */
export interface StoredSummary {
  roomId: string;
  personaId: string;
  summary: string;
  /** The newest message folded in. */
  throughMessageId: number;
  foldedMessages: number;
  createdAt: Date;
  updatedAt: Date;
}

/** A new version of a summary, and the version it was made from (null: there was none). */
export interface SummaryWrite {
  roomId: string;
  personaId: string;
  summary: string;
  throughMessageId: number;
  /** Messages folded in by this write. */
  folded: number;
  basedOn: number | null;
}

interface Row {
  room_id: string;
  persona_id: string;
  summary: string;
  through_message_id: string;
  folded_messages: number;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = `room_id, persona_id, summary, through_message_id, folded_messages, created_at, updated_at`;

/**
 * The only code that reads or writes `persona_summaries` (the Personas module's table). A write
 * is a compare-and-set on the version it was made from, so a summary made from an older version
 * (on another instance, or before a reset) never replaces a newer one or undoes a reset.
 */
@Injectable()
export class PersonaMemoryStore {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  async get(roomId: string, personaId: string): Promise<StoredSummary | null> {
    const rows = await this.db.query<Row[]>(
      `SELECT ${COLUMNS} FROM persona_summaries WHERE room_id = $1 AND persona_id = $2`,
      [roomId, personaId],
    );
    return rows[0] ? toSummary(rows[0]) : null;
  }

  /**
   * Stores `w` if the stored summary is still the one it was made from (`basedOn`: its
   * through_message_id, or none) and it moves forward. False when it lost: another write came
   * first, or a reset removed the summary it was made from, or the room or persona is gone.
   */
  async save(w: SummaryWrite): Promise<boolean> {
    if (w.basedOn === null) {
      try {
        const rows = await this.db.query<unknown[]>(
          `INSERT INTO persona_summaries (room_id, persona_id, summary, through_message_id, folded_messages)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING room_id`,
          [w.roomId, w.personaId, w.summary, w.throughMessageId, w.folded],
        );
        return rows.length > 0;
      } catch (err) {
        if (isForeignKeyViolation(err)) return false; // the room or the persona was deleted
        throw err;
      }
    }
    const result = await this.db.query<unknown>(
      `UPDATE persona_summaries
          SET summary = $3, through_message_id = $4, folded_messages = folded_messages + $5,
              updated_at = now()
        WHERE room_id = $1 AND persona_id = $2 AND through_message_id = $6
          AND through_message_id < $4`,
      [w.roomId, w.personaId, w.summary, w.throughMessageId, w.folded, w.basedOn],
    );
    return updatedRows(result) > 0;
  }

  /** Removes the summary (in `em`); the one removed, or null when there was none. */
  async remove(
    em: EntityManager,
    roomId: string,
    personaId: string,
  ): Promise<StoredSummary | null> {
    const result = await em.query<unknown>(
      `DELETE FROM persona_summaries WHERE room_id = $1 AND persona_id = $2 RETURNING ${COLUMNS}`,
      [roomId, personaId],
    );
    const [row] = returnedRows<Row>(result);
    return row ? toSummary(row) : null;
  }
}

function toSummary(r: Row): StoredSummary {
  return {
    roomId: r.room_id,
    personaId: r.persona_id,
    summary: r.summary,
    throughMessageId: Number(r.through_message_id),
    foldedMessages: r.folded_messages,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}
