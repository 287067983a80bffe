import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { isUniqueViolation } from '../common/pg-errors';
import { AppError } from '../common/errors';
import { returnedRows, updatedRows } from '../common/sql';
import type { Role } from '../users/user.entity';
import type { MemberDto, RoomDto } from './dto/room.dto';
import { Membership, type NotifyLevel, Room } from './room.entity';

const UNREAD_CAP = 1000;
/**
 * Which messages `x` (after the read marker) count as unread, besides not being one's own:
 * not deleted, and not a system notice ("bob joined", "bob left"), as in comparable chat
 * products. The demo client counts live events by the same rule (web/unread.ts).
 */
const UNREAD = `x.deleted_at IS NULL AND x.role <> 'system'`;

/**
 * How many messages after `marker` in `room` mention `user` (their message_mentions rows; a
 * deleted message no longer counts), capped like unread counts. Named cross-module read of
 * message_mentions (index message_mentions_user_room).
 */
const unreadMentions = (user: string, room: string, marker: string) => `(
  SELECT count(*)::int FROM (
    SELECT 1 FROM message_mentions mm JOIN messages x ON x.id = mm.message_id
     WHERE mm.user_id = ${user} AND mm.room_id = ${room} AND mm.message_id > ${marker}
       AND x.deleted_at IS NULL
     LIMIT ${UNREAD_CAP}) y)`;

export interface RoomRow {
  id: string;
  name: string;
  description: string;
  theme: string;
  kind: Room['kind'];
  visibility: Room['visibility'];
  created_by: string | null;
  created_at: Date;
  updated_at: Date;
  slow_mode_ms: number;
  member_count: number;
  my_role: Membership['role'] | null;
  last_read_message_id: string | null;
  archived_at: Date | null;
}

export interface RoomListRow extends RoomRow {
  unread: number;
  unread_mentions: number;
  last_id: string | null;
  notify: NotifyLevel | null;
}

/** A mute or a ban in force now: `until` null means until lifted. */
export interface Sanction {
  until: Date | null;
  reason: string;
}

/**
 * What the access policy decides from, read in one statement from current state: the user's
 * global role (never a copy cached in a token or a socket), the room and the membership, and
 * what moderation takes away (the room's archive flag, the user's mute and ban in it, each only
 * while in force). `room` is null when the room does not exist; `role` null when the user does
 * not (or is disabled).
 */
export interface AccessFacts {
  role: Role | null;
  room: Room | null;
  membership: Pick<Membership, 'role'> | null;
  archivedAt: Date | null;
  mute: Sanction | null;
  ban: Sanction | null;
}

/** What a guarded membership insert did: refused = the room is archived or the user banned. */
export type Admission = 'added' | 'exists' | 'refused';

/**
 * The per-(room, user) membership lock: joining, adding and banning take it first in their
 * transaction, so a join racing a ban is decided in one order or the other, never both.
 * (The two-int form: its keys never collide with the rooms' one-bigint message locks.)
 */
const MEMBERSHIP_LOCK = `SELECT pg_advisory_xact_lock(hashtext($1::text), hashtext($2::text))`;

const ROOM_SELECT = `
  SELECT r.id, r.name, r.description, r.theme, r.kind, r.visibility, r.created_by, r.created_at, r.updated_at,
         r.slow_mode_ms,
         (SELECT count(*)::int FROM memberships c WHERE c.room_id = r.id) AS member_count,
         ms.role AS my_role, ms.last_read_message_id, r.archived_at`;

/** The room fields a PATCH may change (columns of the same names). */
const ROOM_FIELDS = ['name', 'description', 'theme', 'visibility'] as const;
type RoomField = (typeof ROOM_FIELDS)[number];
export type RoomChanges = Partial<Pick<Room, RoomField>>;

/**
 * The rooms and memberships tables. Pure data access: no access rules (AccessPolicy), no events
 * (RoomsService). Writes that must commit with a system message take the caller's transaction.
 */
@Injectable()
export class RoomStore {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /**
   * Named cross-module read (users.role, room_bans): the facts AccessPolicy decides from.
   * Mutes and bans count only while in force (`until` > now(); 'infinity' is "until lifted").
   */
  async accessFacts(userId: string, roomId: string): Promise<AccessFacts> {
    const rows = await this.db.query<
      ({
        user_role: Role | null;
        member_role: Membership['role'] | null;
        archived_at: Date | null;
        muted: boolean | null;
        mute_until: Date | null;
        mute_reason: string | null;
        banned: boolean;
        ban_until: Date | null;
        ban_reason: string | null;
      } & Partial<Room>)[]
    >(
      `SELECT u.role AS user_role, ms.role AS member_role, r.archived_at,
              ms.muted_until > now() AS muted, NULLIF(ms.muted_until, 'infinity') AS mute_until,
              ms.mute_reason, b.user_id IS NOT NULL AS banned,
              NULLIF(b.until, 'infinity') AS ban_until, b.reason AS ban_reason,
              r.id, r.name, r.description, r.theme, r.kind, r.visibility,
              r.direct_key AS "directKey", r.created_by AS "createdBy",
              r.created_at AS "createdAt", r.updated_at AS "updatedAt"
         FROM (SELECT $2::uuid AS room_id) q
         LEFT JOIN users u ON u.id = $1 AND NOT u.disabled
         LEFT JOIN rooms r ON r.id = q.room_id
         LEFT JOIN memberships ms ON ms.room_id = r.id AND ms.user_id = $1
         LEFT JOIN room_bans b ON b.room_id = r.id AND b.user_id = $1 AND b.until > now()`,
      [userId, roomId],
    );
    const {
      user_role,
      member_role,
      archived_at,
      muted,
      mute_until,
      mute_reason,
      banned,
      ban_until,
      ban_reason,
      ...room
    } = rows[0] ?? {};
    return {
      role: user_role ?? null,
      room: room.id ? Object.assign(new Room(), room) : null,
      membership: member_role ? { role: member_role } : null,
      archivedAt: archived_at ?? null,
      mute: muted ? { until: mute_until ?? null, reason: mute_reason ?? '' } : null,
      ban: banned ? { until: ban_until ?? null, reason: ban_reason ?? '' } : null,
    };
  }

  /**
   * Of `roomIds`, the ones the user may still read (member, or a current admin for rooms that
   * are not conversations; none while disabled or suspended): the chat module re-evaluates live
   * subscriptions with it, the push worker each delivery.
   */
  async readableOf(userId: string, roomIds: string[]): Promise<Set<string>> {
    if (!roomIds.length) return new Set();
    const rows = await this.db.query<{ id: string }[]>(
      `SELECT r.id FROM rooms r
         LEFT JOIN memberships ms ON ms.room_id = r.id AND ms.user_id = $1
         LEFT JOIN users u ON u.id = $1 AND NOT u.disabled
                          AND NOT coalesce(u.suspended_until > now(), false)
        WHERE r.id = ANY($2::uuid[])
          AND u.id IS NOT NULL
          AND (ms.user_id IS NOT NULL OR (u.role = 'admin' AND r.kind <> 'conversation'))`,
      [userId, roomIds],
    );
    return new Set(rows.map((r) => r.id));
  }

  /**
   * Named cross-module read (memberships × users × rooms), for AccessPolicy.moderatorIds: the
   * users who hold 'moderate' on the room as the policy decides it (its owner and moderators,
   * and every admin; nobody in conversations), enabled ones only.
   */
  async moderatorIdsOf(roomId: string): Promise<string[]> {
    const rows = await this.db.query<{ id: string }[]>(
      `SELECT u.id FROM rooms r
         JOIN memberships ms ON ms.room_id = r.id AND ms.role IN ('owner', 'moderator')
         JOIN users u ON u.id = ms.user_id AND NOT u.disabled
        WHERE r.id = $1 AND r.kind <> 'conversation'
       UNION
       SELECT u.id FROM rooms r
         JOIN users u ON u.role = 'admin' AND NOT u.disabled
        WHERE r.id = $1 AND r.kind <> 'conversation'`,
      [roomId],
    );
    return rows.map((r) => r.id);
  }

  async isMember(roomId: string, userId: string): Promise<boolean> {
    const rows = await this.db.query<unknown[]>(
      `SELECT 1 FROM memberships WHERE room_id = $1 AND user_id = $2`,
      [roomId, userId],
    );
    return rows.length > 0;
  }

  async memberIds(roomId: string): Promise<string[]> {
    const rows = await this.db.query<{ user_id: string }[]>(
      `SELECT user_id FROM memberships WHERE room_id = $1`,
      [roomId],
    );
    return rows.map((r) => r.user_id);
  }

  /** Named cross-module read (memberships × users): every member's id and username. */
  /**
   * A room's members as mentions name them, and whether each is told of every message (level
   * `all`, or any level but `none` in a direct room or conversation, where every message is a
   * `direct` notification: the notification batch's own rule), for RoomMembersCache.
   */
  async memberNames(
    roomId: string,
  ): Promise<{ userId: string; username: string; notifiedOfAll: boolean }[]> {
    return this.db.query<{ userId: string; username: string; notifiedOfAll: boolean }[]>(
      `SELECT ms.user_id AS "userId", u.username,
              (ms.notify = 'all' OR (ms.notify <> 'none' AND r.kind <> 'group')) AS "notifiedOfAll"
         FROM memberships ms JOIN users u ON u.id = ms.user_id JOIN rooms r ON r.id = ms.room_id
        WHERE ms.room_id = $1`,
      [roomId],
    );
  }

  async roomIdsOf(userId: string): Promise<string[]> {
    const rows = await this.db.query<{ room_id: string }[]>(
      `SELECT room_id FROM memberships WHERE user_id = $1`,
      [userId],
    );
    return rows.map((r) => r.room_id);
  }

  /**
   * Rooms the user belongs to plus every public group room, by last activity (keyset). Named
   * cross-module read of messages and message_mentions (unread counts, unread mentions: the
   * user's mention rows after the read marker, of messages not deleted; index
   * message_mentions_user_room).
   */
  list(
    userId: string,
    q: { kind?: Room['kind']; cursor?: { activity: string; id: string }; limit: number },
  ): Promise<RoomListRow[]> {
    return this.db.query<RoomListRow[]>(
      `${ROOM_SELECT},
              COALESCE(lm.id, 0) AS last_id, ms.notify,
              CASE WHEN ms.user_id IS NULL THEN 0 ELSE (
                SELECT count(*)::int FROM (
                  SELECT 1 FROM messages x
                   WHERE x.room_id = r.id AND x.id > ms.last_read_message_id AND ${UNREAD}
                     AND x.author_id IS DISTINCT FROM $1
                   LIMIT ${UNREAD_CAP}) y) END AS unread,
              CASE WHEN ms.user_id IS NULL THEN 0
                   ELSE ${unreadMentions('$1', 'r.id', 'ms.last_read_message_id')} END AS unread_mentions
         FROM rooms r
         LEFT JOIN memberships ms ON ms.room_id = r.id AND ms.user_id = $1
         LEFT JOIN LATERAL (SELECT x.id FROM messages x WHERE x.room_id = r.id AND x.deleted_at IS NULL
                             ORDER BY x.id DESC LIMIT 1) lm ON true
        WHERE (ms.user_id IS NOT NULL OR (r.kind = 'group' AND r.visibility = 'public'))
          AND ($2::varchar IS NULL OR r.kind = $2)
          AND ($3::bigint IS NULL OR (COALESCE(lm.id, 0), r.id) < ($3::bigint, $4::uuid))
        ORDER BY COALESCE(lm.id, 0) DESC, r.id DESC
        LIMIT $5`,
      [userId, q.kind ?? null, q.cursor?.activity ?? null, q.cursor?.id ?? null, q.limit],
    );
  }

  /** A room as the given user sees it. */
  async load(roomId: string, userId: string): Promise<RoomDto> {
    const rows = await this.db.query<RoomRow[]>(
      `${ROOM_SELECT} FROM rooms r LEFT JOIN memberships ms ON ms.room_id = r.id AND ms.user_id = $2 WHERE r.id = $1`,
      [roomId, userId],
    );
    if (!rows.length) throw AppError.notFound('Room');
    return toRoomDto(rows[0]);
  }

  /**
   * One member as the member list shows them, mute reason included (for callers who may
   * moderate the room); null when not a member.
   */
  async member(roomId: string, userId: string): Promise<MemberDto | null> {
    return (await this.members(roomId, { limit: 1, userId })).items[0] ?? null;
  }

  async members(
    roomId: string,
    q: { after?: string; limit: number; userId?: string },
  ): Promise<{ items: MemberDto[]; more: boolean }> {
    const rows = await this.db.query<
      {
        user_id: string;
        username: string;
        display_name: string | null;
        role: Membership['role'];
        joined_at: Date;
        muted: boolean;
        muted_until: Date | null;
        mute_reason: string | null;
      }[]
    >(
      `SELECT ms.user_id, u.username, u.display_name, ms.role, ms.joined_at,
              COALESCE(ms.muted_until > now(), false) AS muted,
              CASE WHEN ms.muted_until > now() THEN NULLIF(ms.muted_until, 'infinity') END AS muted_until,
              CASE WHEN ms.muted_until > now() THEN ms.mute_reason END AS mute_reason
         FROM memberships ms JOIN users u ON u.id = ms.user_id
        WHERE ms.room_id = $1 AND ($2::varchar IS NULL OR lower(u.username) > lower($2))
          AND ($4::uuid IS NULL OR ms.user_id = $4)
        ORDER BY lower(u.username) LIMIT $3`,
      [roomId, q.after ?? null, q.limit + 1, q.userId ?? null],
    );
    const items = rows.slice(0, q.limit).map((r) => ({
      userId: r.user_id,
      username: r.username,
      displayName: r.display_name,
      role: r.role,
      joinedAt: r.joined_at,
      muted: r.muted,
      mutedUntil: r.muted_until ? r.muted_until.toISOString() : null,
      muteReason: r.mute_reason,
    }));
    return { items, more: rows.length > q.limit };
  }

  /** Inserts a room (and its owner's membership) in `em`; a taken name is a 409. */
  async insertRoom(
    em: EntityManager,
    room: Pick<Room, 'name' | 'kind' | 'visibility' | 'createdBy'> &
      Partial<Pick<Room, 'description' | 'theme'>>,
    ownerId: string,
  ): Promise<Room> {
    const saved = await this.saveUnique(em, em.create(Room, room));
    await em.insert(Membership, { roomId: saved.id, userId: ownerId, role: 'owner' });
    return saved;
  }

  /**
   * One UPDATE (never load-then-save, which would insert the row again if a delete won the
   * race) of the fields given that differ from the row's, read and locked in the same
   * statement: the fields it changed (their new values; `{}` when none differed), or null when
   * the room is gone. A taken name is a 409.
   */
  async updateRoom(
    roomId: string,
    changes: RoomChanges,
    em: EntityManager = this.db.manager,
  ): Promise<RoomChanges | null> {
    const values = ROOM_FIELDS.map((f) => changes[f] ?? null);
    const differs = ROOM_FIELDS.map(
      (f, i) => `($${i + 2}::varchar IS NOT NULL AND $${i + 2}::varchar <> old.${f})`,
    ).join(' OR ');
    let rows: Pick<Room, RoomField>[];
    try {
      rows = returnedRows<Pick<Room, RoomField>>(
        await em.query(
          `UPDATE rooms r SET ${ROOM_FIELDS.map((f, i) => `${f} = COALESCE($${i + 2}::varchar, old.${f})`).join(', ')},
                  updated_at = now()
             FROM (SELECT id, ${ROOM_FIELDS.join(', ')} FROM rooms WHERE id = $1 FOR UPDATE) old
            WHERE r.id = old.id AND (${differs})
           RETURNING ${ROOM_FIELDS.map((f) => `old.${f}`).join(', ')}`,
          [roomId, ...values],
        ),
      );
    } catch (err) {
      if (isUniqueViolation(err)) throw AppError.conflict('A room with this name already exists');
      throw err;
    }
    const [old] = rows;
    if (!old) return (await em.getRepository(Room).existsBy({ id: roomId })) ? {} : null;
    return Object.fromEntries(
      ROOM_FIELDS.flatMap((f) =>
        changes[f] !== undefined && changes[f] !== old[f] ? [[f, changes[f]]] : [],
      ),
    );
  }

  /** The room's slow-mode interval (0: off); null when the room does not exist. */
  async slowModeMs(roomId: string): Promise<number | null> {
    const rows = await this.db.query<{ slow_mode_ms: number }[]>(
      `SELECT slow_mode_ms FROM rooms WHERE id = $1`,
      [roomId],
    );
    return rows.length ? rows[0].slow_mode_ms : null;
  }

  /**
   * Sets the slow-mode interval in `em` when it differs, the previous one read from the row
   * (locked) in the same statement: `{ previousMs }` when it changed, 'unchanged' when the
   * room had it already, null when the room is gone.
   */
  async setSlowMode(
    em: EntityManager,
    roomId: string,
    ms: number,
  ): Promise<{ previousMs: number } | 'unchanged' | null> {
    const rows = returnedRows<{ previous_ms: number }>(
      await em.query(
        `UPDATE rooms r SET slow_mode_ms = $2, updated_at = now()
           FROM (SELECT id, slow_mode_ms FROM rooms WHERE id = $1 FOR UPDATE) old
          WHERE r.id = old.id AND old.slow_mode_ms <> $2
         RETURNING old.slow_mode_ms AS previous_ms`,
        [roomId, ms],
      ),
    );
    if (rows[0]) return { previousMs: rows[0].previous_ms };
    return (await em.getRepository(Room).existsBy({ id: roomId })) ? 'unchanged' : null;
  }

  async deleteRoom(roomId: string, em: EntityManager = this.db.manager): Promise<void> {
    await em.getRepository(Room).delete({ id: roomId });
  }

  /**
   * Inserts the direct room for `directKey` with both members, in `em`; null when it already
   * existed (ON CONFLICT: created once even under concurrent calls).
   */
  async insertDirect(
    em: EntityManager,
    name: string,
    directKey: string,
    createdBy: string,
    memberIds: [string, string],
  ): Promise<string | null> {
    const inserted = await em.query<{ id: string }[]>(
      `INSERT INTO rooms (name, kind, visibility, direct_key, created_by)
       VALUES ($1, 'direct', 'private', $2, $3) ON CONFLICT (direct_key) DO NOTHING RETURNING id`,
      [name, directKey, createdBy],
    );
    if (!inserted.length) return null;
    await em.insert(
      Membership,
      memberIds.map((userId) => ({ roomId: inserted[0].id, userId, role: 'member' as const })),
    );
    return inserted[0].id;
  }

  /** The direct room of a pair (its `direct_key`); null when there is none. */
  async directRoomId(directKey: string): Promise<string | null> {
    return (await this.db.getRepository(Room).findOneBy({ directKey }))?.id ?? null;
  }

  /** Takes the per-(room, user) membership lock (MEMBERSHIP_LOCK) until `em` commits. */
  async lockMembership(em: EntityManager, roomId: string, userId: string): Promise<void> {
    await em.query(MEMBERSHIP_LOCK, [roomId, userId]);
  }

  /**
   * A sanction's two parties as they stand now, locked in `em`'s transaction (named
   * cross-module read of `users`), in the order the send statement and a room's deletion take
   * these rows: the room's row `FOR KEY SHARE` (a deletion holding it is waited for before any
   * membership lock is held), both users' rows `FOR SHARE` (a role change or a disable waits
   * for the sanction, or is seen), then both membership rows in user-id order, the actor's
   * `FOR SHARE` (a demotion or removal waits, or is seen) and the target's with the lock its
   * write will need anyway (`FOR NO KEY UPDATE` for a mute's update, `FOR UPDATE` for a ban's
   * delete), never a shared lock to be upgraded later: two sanctions of one member, or a
   * sanction and a promotion, wait for each other instead of deadlocking. A send's `FOR KEY
   * SHARE` conflicts only with the ban's, and a ban holds the room's lock first, as the send
   * does. Null role: no such user (or, for the actor, disabled or suspended); null membership:
   * not a member.
   */
  async lockSanctionParties(
    em: EntityManager,
    roomId: string,
    actorId: string,
    targetId: string,
    write: 'mute' | 'ban',
  ): Promise<Record<'actor' | 'target', Pick<AccessFacts, 'role' | 'membership'>>> {
    await em.query(`SELECT 1 FROM rooms WHERE id = $1 FOR KEY SHARE`, [roomId]);
    const users = await em.query<{ id: string; role: Role; barred: boolean }[]>(
      `SELECT id, role, disabled OR COALESCE(suspended_until > now(), false) AS barred
         FROM users WHERE id = ANY($1::uuid[]) ORDER BY id FOR SHARE`,
      [[actorId, targetId]],
    );
    const memberships = new Map<string, Pick<Membership, 'role'>>();
    for (const id of [actorId, targetId].sort()) {
      const lock = id === actorId ? 'SHARE' : write === 'ban' ? 'UPDATE' : 'NO KEY UPDATE';
      const [row] = await em.query<Pick<Membership, 'role'>[]>(
        `SELECT role FROM memberships WHERE room_id = $1 AND user_id = $2 FOR ${lock}`,
        [roomId, id],
      );
      if (row) memberships.set(id, row);
    }
    const party = (id: string) => {
      const user = users.find((u) => u.id === id);
      // The actor counts only while they may act at all (neither disabled nor suspended).
      const role = user && !(id === actorId && user.barred) ? user.role : null;
      return { role, membership: memberships.get(id) ?? null };
    };
    return { actor: party(actorId), target: party(targetId) };
  }

  /**
   * Adds a member unless the room is archived or a ban on the user is in force (named
   * cross-module read of room_bans). Call it under `lockMembership`, so a ban committed just
   * before is seen and one committed after finds the membership to remove.
   */
  async insertMembership(em: EntityManager, roomId: string, userId: string): Promise<Admission> {
    const [row] = await em.query<{ added: number; member: boolean }[]>(
      `WITH ins AS (
         INSERT INTO memberships (room_id, user_id)
         SELECT r.id, $2 FROM rooms r
          WHERE r.id = $1 AND r.archived_at IS NULL
            AND NOT EXISTS (SELECT 1 FROM room_bans b
                             WHERE b.room_id = $1 AND b.user_id = $2 AND b.until > now())
         ON CONFLICT DO NOTHING RETURNING user_id)
       SELECT (SELECT count(*) FROM ins)::int AS added,
              EXISTS (SELECT 1 FROM memberships WHERE room_id = $1 AND user_id = $2) AS member`,
      [roomId, userId],
    );
    return row.added > 0 ? 'added' : row.member ? 'exists' : 'refused';
  }

  /** Sets a member's room role (never the owner's); false when there is no such member. */
  async setMemberRole(
    em: EntityManager,
    roomId: string,
    userId: string,
    role: Exclude<Membership['role'], 'owner'>,
  ): Promise<boolean> {
    const result = await em.query<unknown>(
      `UPDATE memberships SET role = $3 WHERE room_id = $1 AND user_id = $2 AND role <> 'owner'`,
      [roomId, userId, role],
    );
    return updatedRows(result) > 0;
  }

  /**
   * Mutes a member for `durationSec` from now (the database's clock), or until lifted when
   * null. The end as stored (null: until lifted); undefined when there is no such member.
   */
  async mute(
    em: EntityManager,
    roomId: string,
    userId: string,
    durationSec: number | null,
    reason: string,
  ): Promise<{ until: Date | null } | undefined> {
    const [rows] = await em.query<[{ until: Date | null }[], number]>(
      `UPDATE memberships
          SET muted_until = CASE WHEN $3::int IS NULL THEN 'infinity'::timestamptz
                                 ELSE now() + $3::int * interval '1 second' END,
              mute_reason = $4
        WHERE room_id = $1 AND user_id = $2
        RETURNING NULLIF(muted_until, 'infinity') AS until`,
      [roomId, userId, durationSec, reason],
    );
    return rows[0];
  }

  /** Lifts a mute in force; false when the member is not muted (or not a member). */
  async unmute(em: EntityManager, roomId: string, userId: string): Promise<boolean> {
    const result = await em.query<unknown>(
      `UPDATE memberships SET muted_until = NULL, mute_reason = ''
        WHERE room_id = $1 AND user_id = $2 AND muted_until > now()`,
      [roomId, userId],
    );
    return updatedRows(result) > 0;
  }

  /**
   * Archives (sets archived_at) or unarchives a room. The new archived_at when it changed;
   * undefined when the room was already in that state (or is gone).
   */
  async setArchived(
    em: EntityManager,
    roomId: string,
    archived: boolean,
  ): Promise<{ archivedAt: Date | null } | undefined> {
    const [rows] = await em.query<[{ archived_at: Date | null }[], number]>(
      `UPDATE rooms SET archived_at = CASE WHEN $2::boolean THEN now() END
        WHERE id = $1 AND (archived_at IS NULL) = $2::boolean
        RETURNING archived_at`,
      [roomId, archived],
    );
    return rows[0] && { archivedAt: rows[0].archived_at };
  }

  /**
   * True when a membership was removed. `unlessMuted` (a member leaving): not while a mute is in
   * force, decided by the DELETE itself, so a mute committed after the policy's check still
   * holds (leaving and rejoining would lift it). Call it under the room's lock
   * (`NoticeTx.lockRoom`): a send batch holds that lock while it locks the sender's row.
   */
  async deleteMembership(
    em: EntityManager,
    roomId: string,
    userId: string,
    unlessMuted = false,
  ): Promise<boolean> {
    const removed = await em.query<unknown>(
      `DELETE FROM memberships WHERE room_id = $1 AND user_id = $2
          AND NOT ($3::boolean AND COALESCE(muted_until > now(), false))
       RETURNING user_id`,
      [roomId, userId, unlessMuted],
    );
    return updatedRows(removed) > 0;
  }

  /** Sets a member's notification level; false when not a member. */
  async setNotify(roomId: string, userId: string, level: NotifyLevel): Promise<boolean> {
    const result = await this.db.query<unknown>(
      `UPDATE memberships SET notify = $3 WHERE room_id = $1 AND user_id = $2`,
      [roomId, userId, level],
    );
    return updatedRows(result) > 0;
  }

  async setLastRead(em: EntityManager, roomId: string, userId: string, messageId: number) {
    await em.query(
      `UPDATE memberships SET last_read_message_id = $3 WHERE room_id = $1 AND user_id = $2`,
      [roomId, userId, messageId],
    );
  }

  /**
   * Moves the read marker forward (never back) to a message of the room; null when the message
   * is not in the room (or the user is not a member).
   */
  async markRead(
    roomId: string,
    userId: string,
    messageId: number,
  ): Promise<{
    lastReadMessageId: number;
    moved: boolean;
    unread: number;
    unreadMentions: number;
  } | null> {
    const rows = await this.db.query<
      { last_read_message_id: string; moved: boolean; unread: number; unread_mentions: number }[]
    >(
      `WITH target AS (SELECT id FROM messages WHERE id = $3 AND room_id = $1),
            before AS (SELECT last_read_message_id AS prev FROM memberships WHERE room_id = $1 AND user_id = $2),
            upd AS (UPDATE memberships ms SET last_read_message_id = GREATEST(ms.last_read_message_id, target.id)
                      FROM target WHERE ms.room_id = $1 AND ms.user_id = $2
                    RETURNING ms.last_read_message_id)
       SELECT upd.last_read_message_id, upd.last_read_message_id > before.prev AS moved,
              (SELECT count(*)::int FROM (SELECT 1 FROM messages x WHERE x.room_id = $1
                  AND x.id > upd.last_read_message_id AND ${UNREAD}
                  AND x.author_id IS DISTINCT FROM $2 LIMIT ${UNREAD_CAP}) y) AS unread,
              ${unreadMentions('$2', '$1', 'upd.last_read_message_id')} AS unread_mentions
         FROM upd, before`,
      [roomId, userId, messageId],
    );
    if (!rows.length) return null;
    return {
      lastReadMessageId: Number(rows[0].last_read_message_id),
      moved: rows[0].moved,
      unread: rows[0].unread,
      unreadMentions: rows[0].unread_mentions,
    };
  }

  private async saveUnique(em: EntityManager, room: Room): Promise<Room> {
    try {
      return await em.save(room);
    } catch (err) {
      if (isUniqueViolation(err)) throw AppError.conflict('A room with this name already exists');
      throw err;
    }
  }
}

export function toRoomDto(r: RoomRow): RoomDto {
  return {
    id: r.id,
    name: r.name,
    description: r.description,
    theme: r.theme,
    kind: r.kind,
    visibility: r.visibility,
    createdBy: r.created_by,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    slowModeMs: r.slow_mode_ms,
    memberCount: r.member_count,
    joined: r.my_role !== null,
    myRole: r.my_role,
    archivedAt: r.archived_at,
  };
}
