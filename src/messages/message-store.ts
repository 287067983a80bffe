import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { updatedRows } from '../common/sql';
import type { Env } from '../config/env';
import type { MessageRole } from './message.entity';
import type { FinishReason, MessageDto, ReactionSummaryDto } from './dto/message.dto';

interface MessageRow {
  id: string;
  version: string;
  room_id: string;
  author_id: string | null;
  persona_id: string | null;
  role: MessageRole;
  content: string;
  reply_to_id: string | null;
  client_msg_id: string | null;
  created_at: Date;
  edited_at: Date | null;
  deleted_at: Date | null;
  author_username?: string | null;
  author_display_name?: string | null;
  persona_handle?: string | null;
  persona_display_name?: string | null;
  finish_reason: FinishReason | null;
  reactions?: ReactionSummaryDto[];
}

/**
 * Every version bump (create, edit, delete, reaction) in a room happens under that room's
 * transaction-scoped advisory lock, so within a room versions commit in increasing order and a
 * client that has seen version V can never later find a change below V (nothing is skipped by
 * the `since` cursor). The lock is held until the transaction commits.
 *
 * Inserts take it inside their one statement (they read nothing another writer changes). A
 * change that reads the message (edit, delete, reaction) takes it as a statement of its own,
 * first in a transaction: under READ COMMITTED a statement's snapshot is taken when the
 * statement starts, before a lock inside it is granted, so a single statement would read the
 * message as it was before the writer it waited for (an edit would resurrect a message deleted
 * meanwhile, or file a stale text in the history). A statement after the lock sees every change
 * committed under it.
 */
const ROOM_LOCK = `SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))`;

/** A live message, row-locked against deletion by other paths (a room's deletion cascades). */
const LIVE = `SELECT id FROM messages WHERE id = $1 AND room_id = $2 AND deleted_at IS NULL
  FOR NO KEY UPDATE`;

const COLUMNS = `m.id, m.version, m.room_id, m.author_id, m.persona_id, m.role, m.content,
  m.reply_to_id, m.client_msg_id, m.created_at, m.edited_at, m.deleted_at, m.finish_reason`;

const SELECT_FULL = `
  SELECT ${COLUMNS}, u.username AS author_username, u.display_name AS author_display_name,
         p.handle AS persona_handle, p.display_name AS persona_display_name,
         COALESCE(rx.reactions, '[]') AS reactions
    FROM messages m
    LEFT JOIN users u ON u.id = m.author_id
    LEFT JOIN personas p ON p.id = m.persona_id
    LEFT JOIN LATERAL (
      SELECT json_agg(json_build_object('emoji', g.emoji, 'count', g.n, 'userIds', g.users) ORDER BY g.first) AS reactions
        FROM (SELECT emoji, count(*)::int AS n, array_agg(user_id ORDER BY created_at) AS users, min(created_at) AS first
                FROM reactions WHERE message_id = m.id GROUP BY emoji) g
    ) rx ON true`;

/**
 * One statement per send batch: the rooms' locks (sorted, so batches never deadlock), the
 * membership check, the reply check and the idempotent insert, in arrival order.
 */
const SEND_BATCH = `WITH input AS (
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bigint[], $5::varchar[], $6::int[])
                  AS t(room_id, author_id, content, reply_to_id, client_msg_id, ord)),
       locks AS (
         SELECT pg_advisory_xact_lock(hashtextextended(r::text, 0))
           FROM (SELECT DISTINCT room_id AS r FROM input ORDER BY 1) x)
       INSERT INTO messages (room_id, author_id, role, content, reply_to_id, client_msg_id)
       SELECT i.room_id, i.author_id, 'user', i.content, i.reply_to_id, i.client_msg_id
         FROM input i
         JOIN memberships ms ON ms.room_id = i.room_id AND ms.user_id = i.author_id
        WHERE (SELECT count(*) FROM locks) >= 0
          AND (i.reply_to_id IS NULL OR EXISTS (
                SELECT 1 FROM messages r WHERE r.id = i.reply_to_id AND r.room_id = i.room_id))
        ORDER BY i.ord
       ON CONFLICT (author_id, client_msg_id) WHERE client_msg_id IS NOT NULL DO NOTHING
       RETURNING ${COLUMNS.replaceAll('m.', '')}`;

export interface NewUserMessage {
  roomId: string;
  author: { id: string; username: string; displayName: string | null };
  content: string;
  clientMsgId: string;
  replyToId?: number;
}

/**
 * The messages, message_edits and reactions tables. Pure data access: no access rules (those
 * are MessagesService's), no events. RoomsService uses it to write system messages in the same
 * transaction as a membership change.
 */
@Injectable()
export class MessageStore {
  private readonly pending: {
    m: NewUserMessage;
    resolve: (dto: MessageDto | null) => void;
    reject: (err: unknown) => void;
  }[] = [];
  private scheduled = false;
  private batches = 0;
  private readonly batchMax: number;
  private readonly batchConcurrency: number;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    config: ConfigService<Env, true>,
  ) {
    this.batchMax = config.get('SEND_BATCH_MAX', { infer: true });
    this.batchConcurrency = config.get('SEND_BATCH_CONCURRENCY', { infer: true });
  }

  /**
   * Group commit: sends that arrive while a batch is being written are inserted together by
   * the next one (one multi-row INSERT, one commit), up to SEND_BATCH_MAX rows and
   * SEND_BATCH_CONCURRENCY batches at a time. A send is never held back waiting for company
   * (a 2 ms gathering window was measured: it cost latency and throughput, see
   * docs/benchmarks.md). Each promise resolves after its batch committed:
   * the message, or null when nothing was inserted (not a member, reply target not in the
   * room, or the clientMsgId exists).
   */
  insertUserMessage(m: NewUserMessage): Promise<MessageDto | null> {
    return new Promise((resolve, reject) => {
      this.pending.push({ m, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.batches >= this.batchConcurrency || !this.pending.length) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    const batch = this.pending.splice(0, this.batchMax);
    if (!batch.length) return;
    this.batches++;
    try {
      const rows = await this.insertBatch(batch.map((b) => b.m));
      const byKey = new Map(rows.map((r) => [`${r.author_id}|${r.client_msg_id}`, r]));
      for (const { m, resolve } of batch) {
        const key = `${m.author.id}|${m.clientMsgId}`;
        const row = byKey.get(key);
        byKey.delete(key); // a duplicate within the batch is a retry: only the first gets the row
        resolve(row ? this.userDto(row, m) : null);
      }
    } catch {
      // One bad row must not fail its neighbours: write them one by one.
      await Promise.all(
        batch.map(({ m, resolve, reject }) =>
          this.insertBatch([m]).then(
            (rows) => resolve(rows[0] ? this.userDto(rows[0], m) : null),
            reject,
          ),
        ),
      );
    } finally {
      this.batches--;
      this.schedule();
    }
  }

  /**
   * SEND_BATCH as an unnamed statement through TypeORM. (A named statement straight on pg's
   * pool was tried: no measurable gain, and on embedded PGlite a failed execution, e.g. a NUL
   * in the text, left the connection answering 500 to the statements after it.)
   */
  private insertBatch(items: NewUserMessage[]): Promise<MessageRow[]> {
    return this.db.query<MessageRow[]>(SEND_BATCH, [
      items.map((m) => m.roomId),
      items.map((m) => m.author.id),
      items.map((m) => m.content),
      items.map((m) => m.replyToId ?? null),
      items.map((m) => m.clientMsgId),
      items.map((_, i) => i),
    ]);
  }

  private userDto(row: MessageRow, m: NewUserMessage): MessageDto {
    return toDto({
      ...row,
      author_username: m.author.username,
      author_display_name: m.author.displayName,
      reactions: [],
    });
  }

  /** System and assistant messages (no membership check, no idempotency key). */
  async insert(
    m: {
      roomId: string;
      role: MessageRole;
      content: string;
      personaId?: string;
      replyToId?: number;
      /** Persona replies: how generation ended. */
      finishReason?: FinishReason;
    },
    manager: EntityManager = this.db.manager,
  ): Promise<MessageDto> {
    const rows = await manager.query<MessageRow[]>(
      `WITH lock AS (${ROOM_LOCK})
       INSERT INTO messages (room_id, role, content, persona_id, reply_to_id, finish_reason)
       SELECT $1::uuid, $2, $3, $4::uuid, $5::bigint, $6 FROM lock
       RETURNING id`,
      [
        m.roomId,
        m.role,
        m.content,
        m.personaId ?? null,
        m.replyToId ?? null,
        m.finishReason ?? null,
      ],
    );
    return (await this.findById(Number(rows[0].id), manager))!;
  }

  findByClientMsgId(authorId: string, clientMsgId: string): Promise<MessageDto | null> {
    return this.one(`${SELECT_FULL} WHERE m.author_id = $1 AND m.client_msg_id = $2`, [
      authorId,
      clientMsgId,
    ]);
  }

  findById(id: number, manager: EntityManager = this.db.manager): Promise<MessageDto | null> {
    return this.one(`${SELECT_FULL} WHERE m.id = $1`, [id], manager);
  }

  async findByIds(ids: number[]): Promise<MessageDto[]> {
    return ids.length ? this.many(`${SELECT_FULL} WHERE m.id = ANY($1::bigint[])`, [ids]) : [];
  }

  /** Newest `limit` messages with id < before (or the newest overall), returned oldest first. */
  async pageBefore(roomId: string, before: number | undefined, limit: number) {
    const rows = await this.many(
      `${SELECT_FULL} WHERE m.room_id = $1 AND ($2::bigint IS NULL OR m.id < $2) ORDER BY m.id DESC LIMIT $3`,
      [roomId, before ?? null, limit + 1],
    );
    return { items: rows.slice(0, limit).reverse(), more: rows.length > limit };
  }

  /** Oldest `limit` messages with id >= from (inclusive) or > after. */
  async pageAfter(roomId: string, after: number, limit: number, inclusive = false) {
    const rows = await this.many(
      `${SELECT_FULL} WHERE m.room_id = $1 AND m.id ${inclusive ? '>=' : '>'} $2 ORDER BY m.id ASC LIMIT $3`,
      [roomId, after, limit + 1],
    );
    return { items: rows.slice(0, limit), more: rows.length > limit };
  }

  /** Everything created or changed after version `since`, in version order. */
  async changes(roomId: string, since: number, limit: number) {
    const rows = await this.many(
      `${SELECT_FULL} WHERE m.room_id = $1 AND m.version > $2 ORDER BY m.version ASC LIMIT $3`,
      [roomId, since, limit + 1],
    );
    return { items: rows.slice(0, limit), more: rows.length > limit };
  }

  async search(roomId: string, q: string, before: number | undefined, limit: number) {
    const rows = await this.many(
      `${SELECT_FULL}
        WHERE m.room_id = $1 AND m.deleted_at IS NULL AND m.search @@ websearch_to_tsquery('simple', $2)
          AND ($3::bigint IS NULL OR m.id < $3)
        ORDER BY m.id DESC LIMIT $4`,
      [roomId, q, before ?? null, limit + 1],
    );
    return { items: rows.slice(0, limit), more: rows.length > limit };
  }

  /**
   * Edit: keep the old content in message_edits, replace, bump the version; at most `maxEdits`
   * edits per message. The message as this edit left it; 'gone' when it is deleted (or never
   * was), 'limit' when it has `maxEdits` edits already.
   */
  edit(
    id: number,
    roomId: string,
    content: string,
    maxEdits: number,
  ): Promise<MessageDto | 'gone' | 'limit'> {
    return this.db.transaction(async (tx) => {
      await tx.query(ROOM_LOCK, [roomId]);
      const [live] = await tx.query<{ edits: number }[]>(
        `SELECT (SELECT count(*)::int FROM message_edits e WHERE e.message_id = m.id) AS edits
           FROM (${LIVE}) m`,
        [id, roomId],
      );
      if (!live) return 'gone';
      if (live.edits >= maxEdits) return 'limit';
      await tx.query(
        `WITH old AS (INSERT INTO message_edits (message_id, content)
                      SELECT id, content FROM messages WHERE id = $1 RETURNING message_id)
         UPDATE messages m SET content = $2, edited_at = now(), version = nextval('message_versions')
           FROM old WHERE m.id = old.message_id`,
        [id, content],
      );
      return (await this.findById(id, tx)) ?? 'gone';
    });
  }

  /**
   * Tombstone: content (and with it the generated search column), edit history and reactions
   * go; the row stays so clients can sync. The tombstone, or null when already deleted.
   */
  tombstone(id: number, roomId: string): Promise<MessageDto | null> {
    return this.db.transaction(async (tx) => {
      await tx.query(ROOM_LOCK, [roomId]);
      if (!(await tx.query<unknown[]>(LIVE, [id, roomId])).length) return null;
      await tx.query(
        `WITH edits AS (DELETE FROM message_edits WHERE message_id = $1),
              rx AS (DELETE FROM reactions WHERE message_id = $1)
         UPDATE messages SET content = '', deleted_at = now(), version = nextval('message_versions')
          WHERE id = $1`,
        [id],
      );
      return this.findById(id, tx);
    });
  }

  /**
   * Adds or removes one reaction of a live message; bumps the version only when something
   * changed. The message as it stands after it, or null when it is deleted.
   */
  react(
    id: number,
    roomId: string,
    userId: string,
    emoji: string,
    add: boolean,
  ): Promise<{ message: MessageDto; changed: boolean } | null> {
    return this.db.transaction(async (tx) => {
      await tx.query(ROOM_LOCK, [roomId]);
      if (!(await tx.query<unknown[]>(LIVE, [id, roomId])).length) return null;
      const change = add
        ? `INSERT INTO reactions (message_id, user_id, emoji) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING RETURNING message_id`
        : `DELETE FROM reactions WHERE message_id = $1 AND user_id = $2 AND emoji = $3
             RETURNING message_id`;
      const result = await tx.query<unknown>(
        `WITH changed AS (${change})
         UPDATE messages m SET version = nextval('message_versions')
           FROM changed WHERE m.id = changed.message_id`,
        [id, userId, emoji],
      );
      const message = await this.findById(id, tx);
      return message && { message, changed: updatedRows(result) > 0 };
    });
  }

  /** One page of a message's edit history, oldest first, keyset on the edit's id. */
  edits(
    id: number,
    after: number | undefined,
    limit: number,
  ): Promise<{ id: string; content: string; editedAt: Date }[]> {
    return this.db.query(
      `SELECT id, content, edited_at AS "editedAt" FROM message_edits
        WHERE message_id = $1 AND ($2::bigint IS NULL OR id > $2)
        ORDER BY id LIMIT $3`,
      [id, after ?? null, limit],
    );
  }

  private async one(sql: string, params: unknown[], manager: EntityManager = this.db.manager) {
    const rows = await manager.query<MessageRow[]>(sql, params);
    return rows.length ? toDto(rows[0]) : null;
  }

  private async many(sql: string, params: unknown[]) {
    return (await this.db.query<MessageRow[]>(sql, params)).map(toDto);
  }
}

function toDto(r: MessageRow): MessageDto {
  const deleted = r.deleted_at !== null;
  return {
    id: Number(r.id),
    version: Number(r.version),
    roomId: r.room_id,
    author: r.author_id
      ? {
          id: r.author_id,
          kind: 'user',
          username: r.author_username ?? undefined,
          displayName: r.author_display_name ?? null,
        }
      : r.persona_id
        ? {
            id: r.persona_id,
            kind: 'persona',
            // Absent when the persona was deleted: its replies keep their author id.
            handle: r.persona_handle ?? undefined,
            displayName: r.persona_display_name ?? null,
          }
        : null,
    role: r.role,
    ...(deleted ? {} : { content: r.content }),
    replyToId: r.reply_to_id === null ? null : Number(r.reply_to_id),
    clientMsgId: r.client_msg_id,
    reactions: r.reactions ?? [],
    createdAt: r.created_at,
    editedAt: r.edited_at,
    deletedAt: r.deleted_at,
    ...(r.finish_reason ? { finishReason: r.finish_reason } : {}),
  };
}

/** Adds the caller's `me` flag to reaction summaries (REST responses and acks). */
export function forViewer(m: MessageDto, userId: string): MessageDto {
  return m.reactions.length
    ? { ...m, reactions: m.reactions.map((r) => ({ ...r, me: r.userIds.includes(userId) })) }
    : m;
}
