import { Injectable, StreamableFile } from '@nestjs/common';
import { hostname } from 'node:os';
import { Readable } from 'node:stream';
import type { EntityManager } from 'typeorm';
import { AuditStore, type AuditRecord, type AuditRow } from './audit.store';
import type {
  AuditEntryDto,
  AuditFilterQuery,
  AuditPageDto,
  ListAuditQuery,
} from './dto/audit.dto';

export type AuditEntry = Omit<AuditRow, 'instance'>;

/** This process, as the audit log names it: host and pid (several instances share a log). */
export const INSTANCE = `${hostname()}:${process.pid}`;

/** Rows per query of an export: memory stays bounded whatever the log's size. */
const EXPORT_CHUNK = 500;

/**
 * Records every moderation and admin action: who, what, target, reason, when, from which
 * instance. Call it inside the action's transaction (pass its EntityManager) so an action is
 * never committed without its record, nor a record without its action.
 *
 * Reads (admins only, decided by the route's role check from current state): a keyset page,
 * and the export as JSON Lines. Nothing here updates or deletes; retention is AuditRetention's.
 */
@Injectable()
export class AuditService {
  constructor(private readonly store: AuditStore) {}

  record(entry: AuditEntry, em?: EntityManager): Promise<void> {
    return this.store.append({ ...entry, instance: INSTANCE }, em);
  }

  async list(q: ListAuditQuery): Promise<AuditPageDto> {
    const rows = await this.store.page(q, q.before, q.limit + 1);
    const items = rows.slice(0, q.limit).map(toEntryDto);
    return { items, nextCursor: rows.length > q.limit ? items[items.length - 1].id : null };
  }

  /**
   * Every entry the filter selects, newest first, one JSON object per line. Read in keyset
   * chunks as the client consumes them (Readable.from pulls the generator only on demand), so
   * a large log is never held in memory; entries recorded after the export began are not in it.
   * The first chunk is read before answering, so a failing database is a proper error
   * response; a failure later cuts the download short (the response is destroyed, never ended
   * as if complete).
   */
  async export(filter: AuditFilterQuery): Promise<StreamableFile> {
    const first = await this.store.page(filter, undefined, EXPORT_CHUNK);
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    return new StreamableFile(Readable.from(this.lines(filter, first)), {
      type: 'application/x-ndjson',
      disposition: `attachment; filename="parlor-audit-${stamp}.jsonl"`,
    });
  }

  private async *lines(filter: AuditFilterQuery, first: AuditRecord[]): AsyncGenerator<string> {
    let rows = first;
    for (;;) {
      if (rows.length) yield rows.map((r) => JSON.stringify(toEntryDto(r)) + '\n').join('');
      if (rows.length < EXPORT_CHUNK) return;
      rows = await this.store.page(filter, rows[rows.length - 1].id, EXPORT_CHUNK);
    }
  }
}

function toEntryDto(r: AuditRecord): AuditEntryDto {
  const { actorUsername, ...rest } = r;
  return { ...rest, ...(actorUsername !== null ? { actorUsername } : {}) };
}
