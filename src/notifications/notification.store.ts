import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import type { MessageAuthorDto, NotificationDto, NotificationKind, RoomKind } from '../common/wire';

/** Characters of the message's text a notification carries (`excerpt`). */
export const EXCERPT_CHARS = 200;

/** A message to notify about: `edit` = an edit, which can only add mention recipients. */
export interface NotifyItem {
  messageId: number;
  edit: boolean;
  /**
   * Given with `mayNotifyAll: false`, the message has no mention, thread or persona requester:
   * it can only notify in a room where some member gets every message (level `all`, or a
   * direct room or conversation), which RoomMembersCache answers from memory first.
   */
  roomId?: string;
  mayNotifyAll?: boolean;
}

interface NotificationRow {
  id: string;
  user_id: string;
  kind: NotificationKind;
  room_id: string;
  room_name: string;
  room_kind: RoomKind;
  message_id: string;
  created_at: Date;
  read_at: Date | null;
  excerpt: string | null;
  persona_id: string | null;
  actor_id: string | null;
  actor_username: string | null;
  actor_display_name: string | null;
  persona_handle: string | null;
  persona_display_name: string | null;
}

/** A new notification and its recipient. */
export interface NewNotification {
  userId: string;
  notification: NotificationDto;
}

/**
 * The DTO's columns, from `n` (a notifications row) joined with the room, the message, the
 * actor and the message's persona (named cross-module reads of rooms, messages, users and
 * personas).
 */
const DTO_COLUMNS = `n.id, n.user_id, n.kind, n.room_id, r.name AS room_name, r.kind AS room_kind,
  n.message_id, n.created_at, n.read_at,
  CASE WHEN m.deleted_at IS NULL THEN left(m.content, ${EXCERPT_CHARS}) END AS excerpt,
  m.persona_id, u.id AS actor_id, u.username AS actor_username, u.display_name AS actor_display_name,
  p.handle AS persona_handle, p.display_name AS persona_display_name`;

const DTO_JOINS = `JOIN rooms r ON r.id = n.room_id
  JOIN messages m ON m.id = n.message_id
  LEFT JOIN users u ON u.id = n.actor_id
  LEFT JOIN personas p ON p.id = m.persona_id`;

/**
 * One statement per batch of messages: who gets a notification is decided here, from current
 * state (named cross-module read of messages, rooms, memberships, users, message_mentions and
 * thread_follows), and each (recipient, message) is inserted once (`notifications_once`: a
 * message processed twice, by a retry or another instance, notifies nobody twice).
 *
 * Candidates, by kind precedence (rank): 1 mention — the users the message mentions; 2 direct
 * — every member of a direct room or a conversation; 3 thread — followers of the message's
 * thread (`following`), and the user whose message a persona answers; 4 message — members at
 * level `all`. Edits (`edit`) only add mention recipients. Then: never the author, only current
 * members (a removed member, an admin who is no member, someone mentioned who cannot read the
 * room: nothing), never at level `none` (mentions included), never a disabled account, and not
 * for a message the recipient has already read (their read marker is past it; an edit's new
 * mention still notifies). System messages and deleted messages notify nobody.
 */
const NOTIFY_BATCH = `WITH input AS (
         SELECT * FROM unnest($1::bigint[], $2::boolean[]) AS t(message_id, edit)),
       msg AS (
         SELECT DISTINCT ON (m.id) m.id, m.room_id, m.author_id, m.role, m.reply_to_id,
                m.thread_root_id, r.kind AS room_kind, i.edit
           FROM input i
           JOIN messages m ON m.id = i.message_id
           JOIN rooms r ON r.id = m.room_id
          WHERE m.deleted_at IS NULL AND m.role <> 'system'
          ORDER BY m.id, i.edit),
       candidate AS (
         SELECT msg.id, mm.user_id, 1 AS rank
           FROM msg JOIN message_mentions mm ON mm.message_id = msg.id
         UNION ALL
         SELECT msg.id, ms.user_id, 2
           FROM msg JOIN memberships ms ON ms.room_id = msg.room_id
          WHERE NOT msg.edit AND msg.room_kind IN ('direct', 'conversation')
         UNION ALL
         SELECT msg.id, tf.user_id, 3
           FROM msg JOIN thread_follows tf ON tf.root_id = msg.thread_root_id AND tf.following
          WHERE NOT msg.edit
         UNION ALL
         SELECT msg.id, asker.author_id, 3
           FROM msg JOIN messages asker ON asker.id = msg.reply_to_id
          WHERE NOT msg.edit AND msg.role = 'assistant' AND asker.author_id IS NOT NULL
         UNION ALL
         SELECT msg.id, ms.user_id, 4
           FROM msg JOIN memberships ms ON ms.room_id = msg.room_id AND ms.notify = 'all'
          WHERE NOT msg.edit),
       best AS (
         SELECT DISTINCT ON (c.id, c.user_id) c.id, c.user_id, c.rank
           FROM candidate c ORDER BY c.id, c.user_id, c.rank),
       n AS (
         INSERT INTO notifications (user_id, room_id, message_id, kind, actor_id)
         SELECT b.user_id, msg.room_id, msg.id,
                (ARRAY['mention', 'direct', 'thread', 'message'])[b.rank], msg.author_id
           FROM best b
           JOIN msg ON msg.id = b.id
           JOIN memberships ms ON ms.room_id = msg.room_id AND ms.user_id = b.user_id
           JOIN users ru ON ru.id = b.user_id AND NOT ru.disabled
          WHERE b.user_id IS DISTINCT FROM msg.author_id AND ms.notify <> 'none'
            AND (msg.edit OR msg.id > ms.last_read_message_id)
          ORDER BY msg.id, b.user_id
         ON CONFLICT ON CONSTRAINT notifications_once DO NOTHING
         RETURNING id, user_id, kind, room_id, message_id, actor_id, created_at, read_at)
       SELECT ${DTO_COLUMNS}
         FROM n ${DTO_JOINS}
        ORDER BY n.id`;

/**
 * The notifications table. Pure data access: who may see what is NotificationsService's (a
 * user's own notifications only), events are its too.
 */
@Injectable()
export class NotificationStore {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /** Decides and writes the notifications of `items` (NOTIFY_BATCH); the rows inserted. */
  async insertBatch(items: NotifyItem[]): Promise<NewNotification[]> {
    const rows = await this.db.query<NotificationRow[]>(NOTIFY_BATCH, [
      items.map((i) => i.messageId),
      items.map((i) => i.edit),
    ]);
    return rows.map((r) => ({ userId: r.user_id, notification: toDto(r) }));
  }

  /**
   * A page of the user's notifications, newest first (keyset on id), in rooms they are a
   * member of now (one removed from a room no longer sees what it notified).
   */
  async page(
    userId: string,
    q: { unread: boolean; before?: number; roomId?: string; limit: number; id?: number },
  ): Promise<{ items: NotificationDto[]; more: boolean }> {
    const rows = await this.db.query<NotificationRow[]>(
      `SELECT ${DTO_COLUMNS}
         FROM notifications n
         JOIN memberships ms ON ms.room_id = n.room_id AND ms.user_id = n.user_id
         ${DTO_JOINS}
        WHERE n.user_id = $1 AND (NOT $2::boolean OR n.read_at IS NULL)
          AND ($3::bigint IS NULL OR n.id < $3) AND ($4::uuid IS NULL OR n.room_id = $4)
          AND ($6::bigint IS NULL OR n.id = $6)
        ORDER BY n.id DESC LIMIT $5`,
      [userId, q.unread, q.before ?? null, q.roomId ?? null, q.limit + 1, q.id ?? null],
    );
    return { items: rows.slice(0, q.limit).map(toDto), more: rows.length > q.limit };
  }

  /**
   * Marks one of the user's notifications read (once: a second call changes nothing). null
   * when the user has no such notification; `changed` whether it was unread.
   */
  async markOne(userId: string, id: number): Promise<{ changed: boolean } | null> {
    const [row] = await this.db.query<{ changed: number; found: boolean }[]>(
      `WITH upd AS (UPDATE notifications SET read_at = now()
                     WHERE id = $2 AND user_id = $1 AND read_at IS NULL RETURNING id)
       SELECT (SELECT count(*) FROM upd)::int AS changed,
              EXISTS (SELECT 1 FROM notifications WHERE id = $2 AND user_id = $1) AS found`,
      [userId, id],
    );
    return row.found ? { changed: row.changed > 0 } : null;
  }

  /**
   * Marks the user's unread notifications read: all, one room's, or (with `upToMessageId`) one
   * room's up to a message. The ids marked.
   */
  async markMany(
    userId: string,
    q: { roomId?: string; upToMessageId?: number },
  ): Promise<number[]> {
    const [rows] = await this.db.query<[{ id: string }[], number]>(
      `UPDATE notifications SET read_at = now()
        WHERE user_id = $1 AND read_at IS NULL AND ($2::uuid IS NULL OR room_id = $2)
          AND ($3::bigint IS NULL OR message_id <= $3)
        RETURNING id`,
      [userId, q.roomId ?? null, q.upToMessageId ?? null],
    );
    return rows.map((r) => Number(r.id)).sort((a, b) => a - b);
  }

  /**
   * Of notifications just written (`ids`), marks read those whose message was deleted by now,
   * and of `markerIds` those whose message the recipient's read marker has passed by now: the
   * batch decided from a snapshot taken before a deletion or a `read.mark` committed, whose own
   * marking (`markMessageRead`, `markMany`) could not see these rows yet. The ids read now
   * (marked here, or already by that marking).
   */
  async readBehindMarker(ids: number[], markerIds: number[]): Promise<Set<number>> {
    // Read already (the marking ran after the batch committed) counts too.
    const rows = await this.db.query<{ id: string }[]>(
      `WITH marked AS (
         UPDATE notifications n SET read_at = now()
          WHERE n.id = ANY($1::bigint[]) AND n.read_at IS NULL
            AND (EXISTS (SELECT 1 FROM messages m WHERE m.id = n.message_id AND m.deleted_at IS NOT NULL)
                 OR (n.id = ANY($2::bigint[])
                     AND EXISTS (SELECT 1 FROM memberships ms
                                  WHERE ms.room_id = n.room_id AND ms.user_id = n.user_id
                                    AND n.message_id <= ms.last_read_message_id)))
          RETURNING n.id)
       SELECT id FROM marked
       UNION
       SELECT id FROM notifications WHERE id = ANY($1::bigint[]) AND read_at IS NOT NULL`,
      [ids, markerIds],
    );
    return new Set(rows.map((r) => Number(r.id)));
  }

  /** Marks every unread notification of a message read (it was deleted): who, and which. */
  async markMessageRead(messageId: number): Promise<{ userId: string; id: number }[]> {
    const [rows] = await this.db.query<[{ id: string; user_id: string }[], number]>(
      `UPDATE notifications SET read_at = now()
        WHERE message_id = $1 AND read_at IS NULL
        RETURNING id, user_id`,
      [messageId],
    );
    return rows.map((r) => ({ userId: r.user_id, id: Number(r.id) }));
  }

  /** Unread notifications per room, in rooms the user is a member of now. */
  async unreadByRoom(userId: string): Promise<{ roomId: string; count: number }[]> {
    return this.db.query(
      `SELECT n.room_id AS "roomId", count(*)::int AS count
         FROM notifications n
         JOIN memberships ms ON ms.room_id = n.room_id AND ms.user_id = n.user_id
        WHERE n.user_id = $1 AND n.read_at IS NULL
        GROUP BY n.room_id ORDER BY n.room_id`,
      [userId],
    );
  }
}

function toDto(r: NotificationRow): NotificationDto {
  const actor: MessageAuthorDto | null = r.persona_id
    ? {
        id: r.persona_id,
        kind: 'persona',
        handle: r.persona_handle ?? undefined,
        displayName: r.persona_display_name,
      }
    : r.actor_id
      ? {
          id: r.actor_id,
          kind: 'user',
          username: r.actor_username ?? undefined,
          displayName: r.actor_display_name,
        }
      : null;
  return {
    id: Number(r.id),
    kind: r.kind,
    roomId: r.room_id,
    roomName: r.room_name,
    roomKind: r.room_kind,
    messageId: Number(r.message_id),
    actor,
    ...(r.excerpt === null ? {} : { excerpt: r.excerpt }),
    createdAt: r.created_at,
    readAt: r.read_at,
  };
}
