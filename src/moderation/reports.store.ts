import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { isForeignKeyViolation, isUniqueViolation, retryOnConflict } from '../common/pg-errors';
import type { ReportAction, ReportCategory, ReportDto, ReportStatus } from './dto/report.dto';

/** A report as stored (the service adds the message). */
export type Report = Omit<ReportDto, 'message'>;

const COLUMNS = `id, message_id AS "messageId", room_id AS "roomId", reporter_id AS "reporterId",
  category, text, status, action, resolution_note AS "resolutionNote",
  resolved_by AS "resolvedBy", resolved_at AS "resolvedAt", created_at AS "createdAt",
  (floor(extract(epoch FROM created_at) * 1000000))::bigint::text AS "createdMicros"`;

/** The cursor's instant, exactly (interval arithmetic is in whole microseconds). */
const AT_CURSOR = `(timestamptz 'epoch' + $3::bigint * interval '1 microsecond')`;

type Row = Report & { messageId: string | number; createdMicros: string };

function toReport({ createdMicros: _c, ...r }: Row): Report {
  return { ...r, messageId: Number(r.messageId) };
}

/**
 * The `reports` table (one per message and reporter), and the moderation queues: newest first,
 * keyset on (created_at DESC, id) with `<microseconds>_<uuid>` cursors (the order of the
 * reports_room_queue / reports_queue indexes).
 */
@Injectable()
export class ReportsStore {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  transaction<T>(work: (manager: EntityManager) => Promise<T>): Promise<T> {
    return retryOnConflict(() => this.db.transaction(work));
  }

  /** A new open report; 'duplicate' when this reporter reported the message already. */
  async create(r: {
    messageId: number;
    roomId: string;
    reporterId: string;
    category: ReportCategory;
    text: string;
  }): Promise<Report | 'duplicate' | 'gone'> {
    try {
      // The insert locks its message's row, then its room's (foreign keys): a room deletion
      // locks them the other way round, and PostgreSQL may abort the insert to break the
      // deadlock. Run again, it finds the message gone ('gone') or the deletion not yet begun.
      const rows = await retryOnConflict(() =>
        this.db.query<Row[]>(
          `INSERT INTO reports (message_id, room_id, reporter_id, category, text)
           VALUES ($1, $2, $3, $4, $5) RETURNING ${COLUMNS}`,
          [r.messageId, r.roomId, r.reporterId, r.category, r.text],
        ),
      );
      return toReport(rows[0]);
    } catch (err) {
      if (isUniqueViolation(err)) return 'duplicate';
      if (isForeignKeyViolation(err)) return 'gone'; // the message or room was deleted meanwhile
      throw err;
    }
  }

  /** The report, read in `manager`'s transaction when one is given (a fresh read of the row). */
  async findById(id: string, manager?: EntityManager): Promise<Report | null> {
    const rows = await (manager ?? this.db).query<Row[]>(
      `SELECT ${COLUMNS} FROM reports WHERE id = $1`,
      [id],
    );
    return rows[0] ? toReport(rows[0]) : null;
  }

  /**
   * Closes an open report (resolved or dismissed) in `manager`'s transaction. One conditional
   * UPDATE: of concurrent closes of one report exactly one finds it open (the others wait for
   * its row lock, then see it closed): null for them, and null too when the report is gone (its
   * room or message deleted meanwhile: the rows cascade), which the caller tells apart by
   * reading it again.
   */
  async close(
    id: string,
    change: {
      status: Exclude<ReportStatus, 'open'>;
      action: ReportAction | null;
      note: string;
      by: string;
    },
    manager: EntityManager,
  ): Promise<Report | null> {
    const [rows] = await manager.query<[Row[], number]>(
      `UPDATE reports SET status = $2, action = $3, resolution_note = $4, resolved_by = $5,
              resolved_at = now()
        WHERE id = $1 AND status = 'open'
        RETURNING ${COLUMNS}`,
      [id, change.status, change.action, change.note, change.by],
    );
    return rows[0] ? toReport(rows[0]) : null;
  }

  /** One page of a queue (one room's, or every room's when roomId is null), newest first. */
  async page(q: {
    roomId: string | null;
    status: ReportStatus;
    cursor?: string;
    limit: number;
  }): Promise<{ items: Report[]; nextCursor: string | null }> {
    const [micros, afterId] = q.cursor ? q.cursor.split('_') : [null, null];
    const rows = await this.db.query<Row[]>(
      `SELECT ${COLUMNS} FROM reports
        WHERE ($1::uuid IS NULL OR room_id = $1) AND status = $2
          AND ($3::bigint IS NULL
               OR created_at < ${AT_CURSOR}
               OR (created_at = ${AT_CURSOR} AND id > $4::uuid))
        ORDER BY created_at DESC, id
        LIMIT $5`,
      [q.roomId, q.status, micros, afterId, q.limit + 1],
    );
    const page = rows.slice(0, q.limit);
    const last = page[page.length - 1];
    return {
      items: page.map(toReport),
      nextCursor: rows.length > q.limit ? `${last.createdMicros}_${last.id}` : null,
    };
  }
}
