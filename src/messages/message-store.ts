import { Inject, Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { AppError } from '../common/errors';
import { isForeignKeyViolation, retryOnConflict } from '../common/pg-errors';
import { updatedRows } from '../common/sql';
import type { Env } from '../config/env';
import { MetricsService } from '../metrics/metrics.service';
import { PG_ENDPOINT, type PgEndpoint } from '../database/database.module';
import {
  type NamedStatement,
  namedStatement,
  PreparedStatements,
} from '../database/prepared-statements';
import type { MessageRole } from './message.entity';
import type { AttachmentDto, MessageUsage, ThreadUpdated } from '../common/wire';
import type { FinishReason, MessageDto, ReactionSummaryDto } from './dto/message.dto';

/**
 * `messages.mentions` (jsonb), for display: one entry per member mentioned by name,
 * `{"userId", "username"}`, in order of first mention, and `{"group": "here"}` /
 * `{"group": "room"}` when the text says `@here` / `@room` (and may). Who was mentioned in all
 * (names, and `@here`/`@room` expanded) is in `message_mentions`.
 */
export type StoredMention = { userId: string; username: string } | { group: 'here' | 'room' };

/** What the send and edit paths store for a message's mentions. */
export interface MessageMentions {
  /** messages.mentions. */
  stored: StoredMention[];
  /** message_mentions rows: the members mentioned (never the author), capped. */
  userIds: string[];
}

export const NO_MENTIONS: MessageMentions = { stored: [], userIds: [] };

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
  /** SELECT_FULL only (persona replies; the send statements leave them out). */
  prompt_tokens?: number | null;
  completion_tokens?: number | null;
  usage_estimated?: boolean | null;
  /** Set (possibly '') when someone other than the author removed it. */
  removal_reason?: string | null;
  reactions?: ReactionSummaryDto[];
  mentions: StoredMention[];
  thread_root_id: string | null;
  reply_count: number;
  last_reply_at: Date | null;
  thread_participants: string[];
  /** SELECT_FULL only (the send statements leave it out: a new row's is set by setAttachments). */
  attachments?: AttachmentDto[];
}

/**
 * A send batch's row: what the database decided (id, version, time, thread root; the room's
 * id as stored; the author and clientMsgId to match it to its send), and for a reply its
 * root's counters after the batch. The rest of the message is what was sent (`sentDto`).
 */
interface SentRow {
  id: string;
  version: string;
  /** As stored (lower case), whatever case the client wrote the room's id in. */
  room_id: string;
  author_id: string;
  client_msg_id: string;
  created_at: Date;
  thread_root_id: string | null;
  root_version: string | null;
  root_reply_count: number | null;
  root_last_reply_at: Date | null;
  root_participants: string[] | null;
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

/**
 * The user may write in the room now: a member, not muted, the room not archived (named
 * cross-module read of memberships and rooms). Edits and reactions check it in their own
 * transaction, so a mute or an archive that committed after the policy's check still holds,
 * as the send batch's insert does.
 */
const WRITABLE = `SELECT 1 FROM memberships ms JOIN rooms r ON r.id = ms.room_id
  WHERE ms.room_id = $1 AND ms.user_id = $2 AND r.archived_at IS NULL
    AND (ms.muted_until IS NULL OR ms.muted_until <= now())`;

/** A live message, row-locked against deletion by other paths (a room's deletion cascades). */
const LIVE = `SELECT id FROM messages WHERE id = $1 AND room_id = $2 AND deleted_at IS NULL
  FOR NO KEY UPDATE`;

const COLUMNS = `m.id, m.version, m.room_id, m.author_id, m.persona_id, m.role, m.content,
  m.reply_to_id, m.client_msg_id, m.created_at, m.edited_at, m.deleted_at, m.finish_reason,
  m.mentions, m.thread_root_id, m.reply_count, m.last_reply_at, m.thread_participants`;

/** The columns a send statement returns per row (SentRow): the rest is what was sent. */
const SENT_COLUMNS = `id, version, room_id, author_id, client_msg_id, created_at, thread_root_id`;

const SELECT_FULL = `
  SELECT ${COLUMNS}, m.attachments, m.removal_reason, m.prompt_tokens, m.completion_tokens,
         m.usage_estimated, u.username AS author_username, u.display_name AS author_display_name,
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
 * Always true (`ord` is the row's position in the batch), and there for the planner: a named
 * statement is planned once (a generic plan) only if PostgreSQL estimates that plan no dearer
 * than planning each execution with its values. Without this, `unnest` of an array parameter
 * counts as 10 rows in the generic plan against 1 for a one-row batch's custom plan, so
 * one-row batches were planned anew every time, and planning is most of their cost. A range
 * on a computed value is estimated at 0.5 % of the rows: the generic plan counts 1 row, and is
 * chosen after the first five executions (measured: docs/benchmarks.md, issue 17).
 */
export const PLAN_ONCE = `t.ord BETWEEN 0 AND 2147483647`;

/**
 * One statement per send batch: the rooms' locks (sorted, so batches never deadlock), the
 * membership check (a member not muted now, of a room not archived: a primary-key join; named
 * cross-module read of memberships and rooms), the reply check and the idempotent insert, in
 * arrival order. The sender's membership row is locked (`FOR KEY SHARE`): the statement's
 * snapshot is taken before it waits for the room's lock, and a ban, kick or leave that held
 * that lock (for its notice) and committed meanwhile deleted the row; locking it sees the
 * deletion, so the send stores nothing, never a message after the "was banned" notice. Every
 * membership removal takes the room's lock before it deletes the row (`NoticeTx.lockRoom`),
 * the order this statement takes them in, so the two never deadlock. The room's row is locked
 * before the membership's (`OF rm, ms`, in that order): a room's deletion locks the room's row,
 * then its cascade deletes the memberships, and the insert's foreign key locks the room's row
 * anyway (the same lock, only earlier), so the two meet on the room's row first and never
 * deadlock. Updates of a membership or a room that leave their keys alone (read marker, mute,
 * notify, rename, archive) do not wait on these locks. (Measured: no difference in the
 * statement's CPU per row, docs/benchmarks.md, eighth sitting.) Then, in the same statement
 * (data-modifying CTEs, one snapshot):
 * - `message_mentions` for each new row's mentioned users (parallel arrays `ord`/`user_id`
 *   joined on the row's position in the batch), members as of the statement's snapshot (one
 *   removed while the batch waited may still get a row; notifications check membership again);
 * - replies: `thread_root_id` is the parent's root (or the parent: flat threads); each root's
 *   `reply_count`, `last_reply_at`, `thread_participants` (last 5 distinct, newest first) and
 *   version are bumped. Concurrent batches replying to one root are ordered by the room's lock
 *   and the root's row lock; `reply_count + n` is evaluated on the row's latest version
 *   (READ COMMITTED re-checks an updated row), so counts are exact;
 * - `thread_follows` for the repliers, users mentioned in replies, and at a root's first
 *   replies its author and the users it mentions; `ON CONFLICT DO NOTHING` keeps an explicit
 *   unfollow (`following = false`).
 * Each row comes back with its root's counters after the batch (null for non-replies).
 */
const SEND_BATCH = `WITH input AS (
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bigint[], $5::varchar[], $6::int[], $7::jsonb[])
                  AS t(room_id, author_id, content, reply_to_id, client_msg_id, ord, mentions)
          WHERE ${PLAN_ONCE}),
       locks AS (
         SELECT pg_advisory_xact_lock(hashtextextended(r::text, 0))
           FROM (SELECT DISTINCT room_id AS r FROM input ORDER BY 1) x),
       ins AS (
         INSERT INTO messages (room_id, author_id, role, content, reply_to_id, client_msg_id, mentions, thread_root_id)
         SELECT i.room_id, i.author_id, 'user', i.content, i.reply_to_id, i.client_msg_id,
                COALESCE(i.mentions, '[]'),
                COALESCE(p.thread_root_id, p.id)
           FROM input i
           JOIN memberships ms ON ms.room_id = i.room_id AND ms.user_id = i.author_id
           JOIN rooms rm ON rm.id = i.room_id
           LEFT JOIN messages p ON p.id = i.reply_to_id AND p.room_id = i.room_id
          WHERE (SELECT count(*) FROM locks) >= 0
            AND (ms.muted_until IS NULL OR ms.muted_until <= now())
            AND rm.archived_at IS NULL
            AND (i.reply_to_id IS NULL OR p.id IS NOT NULL)
          ORDER BY i.ord
          FOR KEY SHARE OF rm, ms
         ON CONFLICT (author_id, client_msg_id) WHERE client_msg_id IS NOT NULL DO NOTHING
         RETURNING ${SENT_COLUMNS}),
       mentioned AS (
         INSERT INTO message_mentions (message_id, user_id, room_id)
         SELECT DISTINCT n.id, u.user_id, n.room_id
           FROM unnest($8::int[], $9::uuid[]) AS u(ord, user_id)
           JOIN input i ON i.ord = u.ord
           JOIN ins n ON n.room_id = i.room_id AND n.author_id = i.author_id
                     AND n.client_msg_id = i.client_msg_id
           JOIN memberships mm ON mm.room_id = n.room_id AND mm.user_id = u.user_id
         ON CONFLICT DO NOTHING
         RETURNING message_id, user_id),
       replies AS (
         SELECT thread_root_id AS root_id, count(*)::int AS n, max(created_at) AS at,
                array_agg(author_id ORDER BY id DESC) AS authors
           FROM ins WHERE thread_root_id IS NOT NULL GROUP BY thread_root_id),
       roots AS (
         UPDATE messages r
            SET reply_count = r.reply_count + x.n,
                last_reply_at = GREATEST(r.last_reply_at, x.at),
                thread_participants = ARRAY(
                  SELECT p FROM unnest(x.authors || r.thread_participants) WITH ORDINALITY AS t(p, k)
                   GROUP BY p ORDER BY min(k) LIMIT 5),
                version = nextval('message_versions')
           FROM replies x
          WHERE r.id = x.root_id
         RETURNING r.id, r.author_id, r.version, r.reply_count, r.last_reply_at, r.thread_participants,
                   r.reply_count = x.n AS first),
       follows AS (
         INSERT INTO thread_follows (root_id, user_id)
         SELECT DISTINCT f.root_id, f.user_id FROM (
           SELECT thread_root_id AS root_id, author_id AS user_id FROM ins WHERE thread_root_id IS NOT NULL
           UNION ALL
           SELECT n.thread_root_id, m.user_id FROM mentioned m JOIN ins n ON n.id = m.message_id
            WHERE n.thread_root_id IS NOT NULL
           UNION ALL
           SELECT id, author_id FROM roots WHERE first AND author_id IS NOT NULL
           UNION ALL
           SELECT t.id, rm.user_id FROM roots t JOIN message_mentions rm ON rm.message_id = t.id
            WHERE t.first) f
         ON CONFLICT DO NOTHING)
       SELECT ${SENT_COLUMNS.replace(/(\w+)/g, 'n.$1')}, t.version AS root_version, t.reply_count AS root_reply_count,
              t.last_reply_at AS root_last_reply_at, t.thread_participants AS root_participants
         FROM ins n LEFT JOIN roots t ON t.id = n.thread_root_id`;

/**
 * SEND_BATCH without the mention and thread steps, for the common batch where no message
 * mentions anyone and none is a reply: the same checks, locks (the membership row's too) and
 * insert. Unnamed, it saved
 * planning SEND_BATCH's data-modifying CTEs at every execution (issue 15); prepared, both are
 * planned once, and it still saves running the empty CTEs: the same CPU per row for one-row
 * batches, 17 % less at 5 rows, 6 % at 50 (docs/benchmarks.md, issue 17).
 * Exported for the `parts` benchmark, which times this very statement on PostgreSQL alone
 * (bench/scenarios/parts.ts).
 */
export const SEND_BATCH_PLAIN = `WITH input AS (
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::varchar[], $5::int[], $6::jsonb[])
                  AS t(room_id, author_id, content, client_msg_id, ord, mentions)
          WHERE ${PLAN_ONCE}),
       locks AS (
         SELECT pg_advisory_xact_lock(hashtextextended(r::text, 0))
           FROM (SELECT DISTINCT room_id AS r FROM input ORDER BY 1) x)
       INSERT INTO messages (room_id, author_id, role, content, client_msg_id, mentions)
       SELECT i.room_id, i.author_id, 'user', i.content, i.client_msg_id, COALESCE(i.mentions, '[]')
         FROM input i
         JOIN memberships ms ON ms.room_id = i.room_id AND ms.user_id = i.author_id
         JOIN rooms rm ON rm.id = i.room_id
        WHERE (SELECT count(*) FROM locks) >= 0
          AND (ms.muted_until IS NULL OR ms.muted_until <= now())
          AND rm.archived_at IS NULL
        ORDER BY i.ord
        FOR KEY SHARE OF rm, ms
       ON CONFLICT (author_id, client_msg_id) WHERE client_msg_id IS NOT NULL DO NOTHING
       RETURNING ${SENT_COLUMNS}, NULL::bigint AS root_version,
                 NULL::int AS root_reply_count, NULL::timestamptz AS root_last_reply_at,
                 NULL::uuid[] AS root_participants`;

/** A sent row's identity in its batch: room (lower case, as stored), author, clientMsgId. */
function sentKey(roomId: string, authorId: string, clientMsgId: string): string {
  return `${roomId}|${authorId}|${clientMsgId}`;
}

export interface NewUserMessage {
  roomId: string;
  author: { id: string; username: string; displayName: string | null };
  content: string;
  clientMsgId: string;
  replyToId?: number;
  /** Parsed and resolved by the caller (MentionsService); none when absent. */
  mentions?: MessageMentions;
}

/**
 * The send statements as named (prepared) statements. Unnamed, each execution was parsed and
 * planned anew: for a one-row batch that was about as much of the database's CPU as running it
 * (docs/benchmarks.md, issue 17 "Prepared send statements").
 */
export const SEND_STATEMENTS = {
  full: namedStatement('parlor_send_batch', SEND_BATCH),
  plain: namedStatement('parlor_send_plain', SEND_BATCH_PLAIN),
} as const;

/**
 * A send batch's statement and parameters: SEND_BATCH_PLAIN when no message mentions anyone
 * and none is a reply, else SEND_BATCH. (Exported for bench/scenarios/sendcost.ts, which
 * measures the database's CPU per row of exactly this.)
 */
export function sendBatchQuery(items: NewUserMessage[]): {
  statement: NamedStatement;
  values: unknown[];
} {
  const ords: number[] = [];
  const userIds: string[] = [];
  items.forEach((m, i) => {
    for (const id of m.mentions?.userIds ?? []) {
      ords.push(i);
      userIds.push(id);
    }
  });
  const mentionsJson = items.map((m) =>
    m.mentions?.stored.length ? JSON.stringify(m.mentions.stored) : null,
  );
  if (!ords.length && items.every((m) => m.replyToId === undefined || m.replyToId === null)) {
    return {
      statement: SEND_STATEMENTS.plain,
      values: [
        items.map((m) => m.roomId),
        items.map((m) => m.author.id),
        items.map((m) => m.content),
        items.map((m) => m.clientMsgId),
        items.map((_, i) => i),
        mentionsJson,
      ],
    };
  }
  return {
    statement: SEND_STATEMENTS.full,
    values: [
      items.map((m) => m.roomId),
      items.map((m) => m.author.id),
      items.map((m) => m.content),
      items.map((m) => m.replyToId ?? null),
      items.map((m) => m.clientMsgId),
      items.map((_, i) => i),
      mentionsJson,
      ords,
      userIds,
    ],
  };
}

/** A committed reply batch's counters of one thread root, shared by that batch's replies. */
export interface ThreadCounters extends ThreadUpdated {
  /** Set once `thread.updated` went out for it (MessageWriter.announce emits it once). */
  announced?: boolean;
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
  /** A sent reply's root counters after its batch (MessageWriter.announce reads it). */
  private readonly threads = new WeakMap<MessageDto, ThreadCounters>();
  private scheduled = false;
  /** The batches in flight, oldest first, with when each started (ms). */
  private readonly inFlight: { started: number; batch: NewUserMessage[] }[] = [];
  /** Pending sends before this index are all of rooms in flight (reset when a batch ends). */
  private blockedUpTo = 0;
  /** Armed while a further batch waits for the one in flight to count as stalled. */
  private stallTimer: NodeJS.Timeout | null = null;
  private readonly batchMax: number;
  private readonly batchConcurrency: number;
  private readonly stallMs: number;

  private readonly prepared: PreparedStatements;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    config: ConfigService<Env, true>,
    @Inject(PG_ENDPOINT) endpoint: PgEndpoint,
    private readonly metrics: MetricsService,
  ) {
    this.prepared = new PreparedStatements(db, endpoint.embedded !== undefined);
    this.batchMax = config.get('SEND_BATCH_MAX', { infer: true });
    this.batchConcurrency = config.get('SEND_BATCH_CONCURRENCY', { infer: true });
    this.stallMs = config.get('SEND_BATCH_STALL_MS', { infer: true });
  }

  /**
   * Group commit: sends that arrive while a batch is being written are inserted together by
   * the next one (one multi-row INSERT, one commit), up to SEND_BATCH_MAX rows. One batch is
   * in flight at a time, so batches grow with load (a one-row statement costs PostgreSQL about
   * five rows of a 50-row one: docs/benchmarks.md). A further batch starts, up to
   * SEND_BATCH_CONCURRENCY at once, only when the oldest in flight has run SEND_BATCH_STALL_MS
   * (say, waiting on the lock of a room being deleted), and it carries only rooms that no batch
   * in flight has: it never waits on their locks, so one slow room cannot hold the sends of
   * other rooms for longer than that, and a room's sends commit in the order they arrived
   * (the next batch with that room starts after the one before it ended). A send is never
   * held back waiting for company (a 2 ms gathering window cost latency and throughput; a 3 ms
   * one for the first send to an idle store saved nothing: the database's cost is per row past
   * a few rows; docs/benchmarks.md). Each promise resolves after its batch committed: the
   * message, or null when nothing was inserted (not a member, muted, the room archived, reply
   * target not in the room, or the clientMsgId exists).
   */
  insertUserMessage(m: NewUserMessage): Promise<MessageDto | null> {
    return new Promise((resolve, reject) => {
      this.pending.push({ m, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || !this.pending.length) return;
    if (this.inFlight.length >= this.batchConcurrency) return;
    if (this.inFlight.length) {
      const wait = this.inFlight[0].started + this.stallMs - performance.now();
      if (wait > 0) {
        this.stallTimer ??= setTimeout(() => {
          this.stallTimer = null;
          this.schedule();
        }, wait);
        return;
      }
    }
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  /** The next batch: the oldest pending sends, of rooms no batch in flight has. */
  private take(): typeof this.pending {
    if (!this.inFlight.length) return this.pending.splice(0, this.batchMax);
    const busy = new Set(this.inFlight.flatMap((f) => f.batch.map((m) => m.roomId)));
    // Sends keep arriving while a batch is stuck: look only at those not looked at yet.
    let i = this.blockedUpTo;
    while (i < this.pending.length && busy.has(this.pending[i].m.roomId)) i++;
    if (i === this.pending.length) {
      this.blockedUpTo = i;
      return [];
    }
    this.blockedUpTo = 0;
    const taken: typeof this.pending = [];
    const left = this.pending.splice(0); // (those before i are all busy)
    for (const p of left.splice(i)) {
      (taken.length < this.batchMax && !busy.has(p.m.roomId) ? taken : left).push(p);
    }
    for (const p of left) this.pending.push(p); // (no spread: there may be many)
    return taken;
  }

  private async flush(): Promise<void> {
    const batch = this.take();
    if (!batch.length) return; // (the batch in flight ends with schedule())
    const flight = { started: performance.now(), batch: batch.map((b) => b.m) };
    this.inFlight.push(flight);
    this.schedule(); // sends left over (more than SEND_BATCH_MAX) may start after a stall
    try {
      const rows = await this.insertBatch(flight.batch);
      // By room too: one clientMsgId sent to two rooms in one batch stores at most one row
      // (it is unique per author), which must answer the send to its own room only.
      const byKey = new Map(rows.map((r) => [sentKey(r.room_id, r.author_id, r.client_msg_id), r]));
      const roots = new Map<string, ThreadCounters>();
      for (const { m, resolve } of batch) {
        const key = sentKey(m.roomId.toLowerCase(), m.author.id, m.clientMsgId);
        const row = byKey.get(key);
        byKey.delete(key); // a duplicate within the batch is a retry: only the first gets the row
        resolve(row ? this.sentDto(row, m, roots) : null);
      }
    } catch {
      // One bad row must not fail its neighbours: write them one by one.
      await Promise.all(
        batch.map(({ m, resolve, reject }) =>
          this.insertBatch([m]).then(
            (rows) => resolve(rows[0] ? this.sentDto(rows[0], m, new Map()) : null),
            reject,
          ),
        ),
      );
    } finally {
      this.inFlight.splice(this.inFlight.indexOf(flight), 1);
      this.blockedUpTo = 0;
      if (this.stallTimer) {
        clearTimeout(this.stallTimer);
        this.stallTimer = null;
      }
      this.schedule();
    }
  }

  /**
   * A batch through SEND_BATCH (or SEND_BATCH_PLAIN) as a named statement on the pool;
   * `tx`: in the caller's transaction, as an unnamed statement through TypeORM.
   */
  private insertBatch(items: NewUserMessage[], tx?: EntityManager): Promise<SentRow[]> {
    this.metrics.sendBatchRows.observe(items.length);
    const { statement, values } = sendBatchQuery(items);
    return tx
      ? tx.query<SentRow[]>(statement.text, values)
      : this.prepared.query<SentRow>(statement, values);
  }

  /** A sent row as its DTO; a reply's root counters kept for announce (one object per root). */
  private sentDto(row: SentRow, m: NewUserMessage, roots: Map<string, ThreadCounters>) {
    const dto = toDto({
      id: row.id,
      version: row.version,
      room_id: row.room_id,
      author_id: m.author.id,
      author_username: m.author.username,
      author_display_name: m.author.displayName,
      persona_id: null,
      role: 'user',
      content: m.content,
      reply_to_id: m.replyToId == null ? null : String(m.replyToId),
      client_msg_id: m.clientMsgId,
      created_at: row.created_at,
      edited_at: null,
      deleted_at: null,
      finish_reason: null,
      reactions: [],
      mentions: m.mentions?.stored ?? [],
      thread_root_id: row.thread_root_id,
      reply_count: 0,
      last_reply_at: null,
      thread_participants: [],
    });
    const { root_version, root_reply_count, root_last_reply_at, root_participants } = row;
    if (row.thread_root_id !== null && root_version !== null) {
      let counters = roots.get(row.thread_root_id);
      if (!counters) {
        counters = {
          roomId: row.room_id,
          rootId: Number(row.thread_root_id),
          version: Number(root_version),
          replyCount: root_reply_count!,
          lastReplyAt: root_last_reply_at!.toISOString(),
          participants: root_participants!,
        };
        roots.set(row.thread_root_id, counters);
      }
      this.threads.set(dto, counters);
    }
    return dto;
  }

  /**
   * One user message in the caller's transaction (`tx`), outside the group commit: the sends
   * that carry attachments, whose claim must commit or roll back with the message. The same
   * statement, checks and room lock as a batch of one; null when nothing was inserted.
   */
  async insertOne(m: NewUserMessage, tx: EntityManager): Promise<MessageDto | null> {
    const [row] = await this.insertBatch([m], tx);
    return row ? this.sentDto(row, m, new Map()) : null;
  }

  /** What a message just inserted by `insertOne` shows of its attachments (same transaction). */
  async setAttachments(
    tx: EntityManager,
    message: MessageDto,
    attachments: AttachmentDto[],
  ): Promise<void> {
    await tx.query(`UPDATE messages SET attachments = $2::jsonb WHERE id = $1`, [
      message.id,
      JSON.stringify(attachments),
    ]);
    message.attachments = attachments;
  }

  /** The root counters of a reply this store just sent (once per batch and root). */
  threadCountersOf(message: MessageDto): ThreadCounters | undefined {
    return this.threads.get(message);
  }

  /**
   * Runs `work` in one transaction (again, as a deadlock victim: `retryOnConflict`); pass the
   * manager to this and other stores' writes.
   */
  transaction<T>(work: (manager: EntityManager) => Promise<T>): Promise<T> {
    return retryOnConflict(() => this.db.transaction(work));
  }

  /** Takes the room's lock (ROOM_LOCK) until `manager`'s transaction commits. */
  async lockRoom(manager: EntityManager, roomId: string): Promise<void> {
    await manager.query(ROOM_LOCK, [roomId]);
  }

  /**
   * System and assistant messages (no membership check, no idempotency key). A persona's reply
   * (`assistant`) is refused (FORBIDDEN) once the room is archived: read-only for everyone,
   * decided by the insert itself, as for members' sends.
   */
  async insert(
    m: {
      roomId: string;
      role: MessageRole;
      content: string;
      personaId?: string;
      replyToId?: number;
      /** Persona replies: how generation ended. */
      finishReason?: FinishReason;
      /** Persona replies: the tokens their generation cost. */
      usage?: MessageUsage;
      /** Persona replies: the members they mention (MentionsService.resolveForPersona). */
      mentions?: MessageMentions;
    },
    manager: EntityManager = this.db.manager,
  ): Promise<MessageDto> {
    const mentions = m.mentions ?? NO_MENTIONS;
    const rows = await manager.query<MessageRow[]>(
      `WITH lock AS (${ROOM_LOCK}),
       ins AS (
         INSERT INTO messages (room_id, role, content, persona_id, reply_to_id, finish_reason,
                               prompt_tokens, completion_tokens, usage_estimated, mentions)
         SELECT $1::uuid, $2, $3, $4::uuid, $5::bigint, $6, $8::int, $9::int, $10::boolean,
                $11::jsonb
           FROM lock
          WHERE NOT $7::boolean
             OR NOT EXISTS (SELECT 1 FROM rooms WHERE id = $1::uuid AND archived_at IS NOT NULL)
         RETURNING id),
       mm AS (
         INSERT INTO message_mentions (message_id, user_id, room_id)
         SELECT ins.id, u.id, $1::uuid
           FROM ins, unnest($12::uuid[]) AS u(id)
           JOIN memberships ms ON ms.room_id = $1::uuid AND ms.user_id = u.id
         ON CONFLICT DO NOTHING)
       SELECT id FROM ins`,
      [
        m.roomId,
        m.role,
        m.content,
        m.personaId ?? null,
        m.replyToId ?? null,
        m.finishReason ?? null,
        m.role === 'assistant',
        m.usage?.promptTokens ?? null,
        m.usage?.completionTokens ?? null,
        m.usage?.estimated ?? null,
        JSON.stringify(mentions.stored),
        mentions.userIds,
      ],
    );
    if (!rows.length) throw AppError.forbidden('Room is archived');
    return (await this.findById(Number(rows[0].id), manager))!;
  }

  /**
   * Merges the search index's GIN pending list into the index (SearchIndexCleaner); answers how
   * many pending pages it merged (0 when another merge had just emptied it).
   */
  async mergeSearchPendingList(): Promise<number> {
    const [row] = await this.db.query<{ pages: string }[]>(
      `SELECT gin_clean_pending_list('messages_search_idx'::regclass) AS pages`,
    );
    return Number(row.pages);
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
   * was), 'limit' when it has `maxEdits` edits already, 'refused' when `authorId` may not write
   * in the room now (WRITABLE).
   */
  edit(
    id: number,
    roomId: string,
    authorId: string,
    content: string,
    maxEdits: number,
    mentions: MessageMentions = NO_MENTIONS,
  ): Promise<MessageDto | 'gone' | 'limit' | 'refused'> {
    return this.db.transaction(async (tx) => {
      await this.lockRoom(tx, roomId);
      if (!(await tx.query<unknown[]>(WRITABLE, [roomId, authorId])).length) return 'refused';
      const [live] = await tx.query<{ edits: number; here_before: boolean }[]>(
        `SELECT (SELECT count(*)::int FROM message_edits e WHERE e.message_id = m.id) AS edits,
                (SELECT x.mentions @> '[{"group": "here"}]' FROM messages x WHERE x.id = m.id) AS here_before
           FROM (${LIVE}) m`,
        [id, roomId],
      );
      if (!live) return 'gone';
      if (live.edits >= maxEdits) return 'limit';
      await tx.query(
        `WITH old AS (INSERT INTO message_edits (message_id, content)
                      SELECT id, content FROM messages WHERE id = $1 RETURNING message_id)
         UPDATE messages m SET content = $2, edited_at = now(), version = nextval('message_versions'),
                mentions = $3::jsonb
           FROM old WHERE m.id = old.message_id`,
        [id, content, JSON.stringify(mentions.stored)],
      );
      await this.rewriteMentions(tx, id, roomId, mentions, live.here_before);
      return (await this.findById(id, tx)) ?? 'gone';
    });
  }

  /**
   * An edit's mention rows: the members the new text mentions get one (still members only),
   * the others lose theirs; except that when the old text (`hereBefore`) and the new one both
   * say `@here`, the members mentioned before keep theirs: who was online at the send is not
   * recomputed by a typo fix.
   */
  private async rewriteMentions(
    tx: EntityManager,
    id: number,
    roomId: string,
    mentions: MessageMentions,
    hereBefore: boolean,
  ): Promise<void> {
    const keepOld = hereBefore && mentions.stored.some((m) => 'group' in m && m.group === 'here');
    await tx.query(
      `WITH gone AS (
         DELETE FROM message_mentions
          WHERE message_id = $1 AND user_id <> ALL($3::uuid[]) AND NOT $4::boolean)
       INSERT INTO message_mentions (message_id, user_id, room_id)
       SELECT $1, u.id, $2 FROM unnest($3::uuid[]) AS u(id)
         JOIN memberships ms ON ms.room_id = $2 AND ms.user_id = u.id
       ON CONFLICT DO NOTHING`,
      [id, roomId, mentions.userIds, keepOld],
    );
  }

  /**
   * Tombstone: content (and with it the generated search column), edit history and reactions
   * go; the row stays so clients can sync. With `removal` (someone other than the author
   * removed it) who and why are kept. In `manager`'s transaction when given (the room's lock is
   * then held until that transaction commits), else in one of its own. The tombstone, or null
   * when already deleted.
   */
  tombstone(
    id: number,
    roomId: string,
    removal?: { by: string; reason: string },
    manager?: EntityManager,
  ): Promise<MessageDto | null> {
    const work = async (tx: EntityManager) => {
      await this.lockRoom(tx, roomId);
      if (!(await tx.query<unknown[]>(LIVE, [id, roomId])).length) return null;
      await tx.query(
        `WITH edits AS (DELETE FROM message_edits WHERE message_id = $1),
              rx AS (DELETE FROM reactions WHERE message_id = $1)
         UPDATE messages SET content = '', attachments = '[]', deleted_at = now(), version = nextval('message_versions'),
                removed_by = $2, removal_reason = $3
          WHERE id = $1`,
        [id, removal?.by ?? null, removal ? removal.reason : null],
      );
      return this.findById(id, tx);
    };
    return manager ? work(manager) : this.db.transaction(work);
  }

  /**
   * Adds or removes one reaction of a live message; bumps the version only when something
   * changed. The message as it stands after it, null when it is deleted, 'refused' when the
   * user may not write in the room now (WRITABLE), 'full' when adding an emoji the message does
   * not have yet would take it past `maxDistinct` distinct emoji (counted under the room's
   * lock, which every reaction change takes, so two new emoji at once cannot both pass).
   */
  react(
    id: number,
    roomId: string,
    userId: string,
    emoji: string,
    add: boolean,
    maxDistinct: number,
  ): Promise<{ message: MessageDto; changed: boolean } | null | 'refused' | 'full'> {
    return this.db.transaction(async (tx) => {
      await this.lockRoom(tx, roomId);
      if (!(await tx.query<unknown[]>(WRITABLE, [roomId, userId])).length) return 'refused';
      if (!(await tx.query<unknown[]>(LIVE, [id, roomId])).length) return null;
      if (add) {
        const [held] = await tx.query<{ n: number; has: boolean }[]>(
          `SELECT count(DISTINCT emoji)::int AS n, COALESCE(bool_or(emoji = $2), false) AS has
             FROM reactions WHERE message_id = $1`,
          [id, emoji],
        );
        if (!held.has && held.n >= maxDistinct) return 'full';
      }
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

  /**
   * One page of a thread's replies, oldest first: the first `limit` with id > after, or the last
   * `limit` with id < before (null: up to the thread's end). A cursor is null when no reply lies
   * beyond that side of the page; on an empty page it names the edge of the range asked.
   */
  async threadPage(
    rootId: number,
    range: { after: number } | { before: number | null },
    limit: number,
  ): Promise<{ items: MessageDto[]; nextCursor: number | null; prevCursor: number | null }> {
    const forward = 'after' in range;
    const edge = 'after' in range ? range.after : range.before;
    const [rows, behind] = await Promise.all([
      this.many(
        forward
          ? `${SELECT_FULL} WHERE m.thread_root_id = $1 AND m.id > $2 ORDER BY m.id LIMIT $3`
          : `${SELECT_FULL} WHERE m.thread_root_id = $1 AND ($2::bigint IS NULL OR m.id < $2)
              ORDER BY m.id DESC LIMIT $3`,
        [rootId, edge, limit + 1],
      ),
      // Whether replies lie behind the cursor given (at or before `after`, at or after `before`).
      edge === null || (forward && edge === 0)
        ? false
        : this.db
            .query<{ found: boolean }[]>(
              `SELECT EXISTS (SELECT 1 FROM messages
                 WHERE thread_root_id = $1 AND id ${forward ? '<=' : '>='} $2) AS found`,
              [rootId, edge],
            )
            .then(([r]) => r.found),
    ]);
    const more = rows.length > limit;
    const items = rows.slice(0, limit);
    if (!forward) items.reverse();
    const first = items.length ? items[0].id : null;
    const last = items.length ? items[items.length - 1].id : null;
    return forward
      ? {
          items,
          nextCursor: more ? last : null,
          prevCursor: behind ? (first ?? Math.min(edge! + 1, Number.MAX_SAFE_INTEGER)) : null,
        }
      : {
          items,
          nextCursor: behind ? (last ?? Math.max(edge! - 1, 0)) : null,
          prevCursor: more ? first : null,
        };
  }

  /** Whether the user follows the thread (a row with following = true). */
  async follows(rootId: number, userId: string): Promise<boolean> {
    const rows = await this.db.query<unknown[]>(
      `SELECT 1 FROM thread_follows WHERE root_id = $1 AND user_id = $2 AND following`,
      [rootId, userId],
    );
    return rows.length > 0;
  }

  /**
   * Follows or unfollows a thread explicitly. An unfollow is kept as `following = false`, so the
   * send statement's automatic follows (ON CONFLICT DO NOTHING) never undo it.
   */
  async setFollowing(rootId: number, userId: string, following: boolean): Promise<void> {
    try {
      await this.db.query(
        `INSERT INTO thread_follows (root_id, user_id, following) VALUES ($1, $2, $3)
         ON CONFLICT (root_id, user_id) DO UPDATE SET following = EXCLUDED.following`,
        [rootId, userId, following],
      );
    } catch (err) {
      // The root (or the user) went since the caller read it: its room was deleted meanwhile.
      if (isForeignKeyViolation(err)) throw AppError.notFound('Message');
      throw err;
    }
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
    ...(r.prompt_tokens != null && r.completion_tokens != null
      ? {
          usage: {
            promptTokens: r.prompt_tokens,
            completionTokens: r.completion_tokens,
            estimated: r.usage_estimated === true,
          },
        }
      : {}),
    ...(deleted && typeof r.removal_reason === 'string'
      ? { removedByModeration: true, removalReason: r.removal_reason }
      : {}),
    ...mentionFields(deleted ? [] : r.mentions),
    attachments: deleted ? [] : (r.attachments ?? []),
    threadRootId: r.thread_root_id === null ? null : Number(r.thread_root_id),
    ...(r.reply_count > 0
      ? {
          replyCount: r.reply_count,
          lastReplyAt: r.last_reply_at!,
          threadParticipants: r.thread_participants,
        }
      : {}),
  };
}

/** messages.mentions as the DTO shows it (a tombstone mentions nobody). */
function mentionFields(
  stored: StoredMention[],
): Pick<MessageDto, 'mentions' | 'mentionsHere' | 'mentionsRoom'> {
  const out: Pick<MessageDto, 'mentions' | 'mentionsHere' | 'mentionsRoom'> = { mentions: [] };
  for (const m of stored) {
    if ('group' in m) {
      if (m.group === 'here') out.mentionsHere = true;
      else out.mentionsRoom = true;
    } else out.mentions.push({ userId: m.userId, username: m.username });
  }
  return out;
}

/** Whether `userId` wrote `m` (a person's message). */
export function isAuthor(m: MessageDto, userId: string): boolean {
  return m.author?.kind === 'user' && m.author.id === userId;
}

/** Whether the reason of a removal by moderation must be hidden from `userId` (not the author). */
export function hidesReasonFrom(m: MessageDto, userId: string): boolean {
  return m.removalReason !== undefined && !isAuthor(m, userId);
}

/** The message without the reason of its removal by moderation (room broadcasts, members). */
export function withoutReason(m: MessageDto): MessageDto {
  if (m.removalReason === undefined) return m;
  const { removalReason: _hidden, ...rest } = m;
  return rest;
}

/**
 * A message as `userId` sees it (REST responses and acks): their `me` flag on reaction
 * summaries, and the reason of a removal by moderation only for its author and, with
 * `moderator` (AccessPolicy 'moderate' on the room), the room's moderators and admins.
 */
export function forViewer(m: MessageDto, userId: string, moderator = false): MessageDto {
  const shown = moderator || !hidesReasonFrom(m, userId) ? m : withoutReason(m);
  return shown.reactions.length
    ? {
        ...shown,
        reactions: shown.reactions.map((r) => ({ ...r, me: r.userIds.includes(userId) })),
      }
    : shown;
}
