import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { isUniqueViolation } from '../common/pg-errors';
import { AppError } from '../common/errors';
import { updatedRows } from '../common/sql';
import type { Role } from '../users/user.entity';
import type { MemberDto, RoomDto } from './dto/room.dto';
import { Membership, Room } from './room.entity';

const UNREAD_CAP = 1000;

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
  member_count: number;
  my_role: Membership['role'] | null;
  last_read_message_id: string | null;
}

export interface RoomListRow extends RoomRow {
  unread: number;
  last_id: string | null;
}

/**
 * What the access policy decides from, read in one statement from current state: the user's
 * global role (never a copy cached in a token or a socket), the room and the membership.
 * `room` is null when the room does not exist; `role` null when the user does not (or is disabled).
 */
export interface AccessFacts {
  role: Role | null;
  room: Room | null;
  membership: Pick<Membership, 'role'> | null;
}

const ROOM_SELECT = `
  SELECT r.id, r.name, r.description, r.theme, r.kind, r.visibility, r.created_by, r.created_at, r.updated_at,
         (SELECT count(*)::int FROM memberships c WHERE c.room_id = r.id) AS member_count,
         ms.role AS my_role, ms.last_read_message_id`;

/**
 * The rooms and memberships tables. Pure data access: no access rules (AccessPolicy), no events
 * (RoomsService). Writes that must commit with a system message take the caller's transaction.
 */
@Injectable()
export class RoomStore {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /** Named cross-module read (users.role): the facts AccessPolicy decides from. */
  async accessFacts(userId: string, roomId: string): Promise<AccessFacts> {
    const rows = await this.db.query<
      ({ user_role: Role | null; member_role: Membership['role'] | null } & Partial<Room>)[]
    >(
      `SELECT u.role AS user_role, ms.role AS member_role,
              r.id, r.name, r.description, r.theme, r.kind, r.visibility,
              r.direct_key AS "directKey", r.created_by AS "createdBy",
              r.created_at AS "createdAt", r.updated_at AS "updatedAt"
         FROM (SELECT $2::uuid AS room_id) q
         LEFT JOIN users u ON u.id = $1 AND NOT u.disabled
         LEFT JOIN rooms r ON r.id = q.room_id
         LEFT JOIN memberships ms ON ms.room_id = r.id AND ms.user_id = $1`,
      [userId, roomId],
    );
    const { user_role, member_role, ...room } = rows[0] ?? {};
    return {
      role: user_role ?? null,
      room: room.id ? Object.assign(new Room(), room) : null,
      membership: member_role ? { role: member_role } : null,
    };
  }

  /**
   * Of `roomIds`, the ones the user may still read (member, or a current admin for rooms that
   * are not conversations): the chat module re-evaluates live subscriptions with it.
   */
  async readableOf(userId: string, roomIds: string[]): Promise<Set<string>> {
    if (!roomIds.length) return new Set();
    const rows = await this.db.query<{ id: string }[]>(
      `SELECT r.id FROM rooms r
         LEFT JOIN memberships ms ON ms.room_id = r.id AND ms.user_id = $1
         LEFT JOIN users u ON u.id = $1 AND NOT u.disabled
        WHERE r.id = ANY($2::uuid[])
          AND u.id IS NOT NULL
          AND (ms.user_id IS NOT NULL OR (u.role = 'admin' AND r.kind <> 'conversation'))`,
      [userId, roomIds],
    );
    return new Set(rows.map((r) => r.id));
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

  async roomIdsOf(userId: string): Promise<string[]> {
    const rows = await this.db.query<{ room_id: string }[]>(
      `SELECT room_id FROM memberships WHERE user_id = $1`,
      [userId],
    );
    return rows.map((r) => r.room_id);
  }

  /** Rooms the user belongs to plus every public group room, by last activity (keyset). */
  list(
    userId: string,
    q: { kind?: Room['kind']; cursor?: { activity: string; id: string }; limit: number },
  ): Promise<RoomListRow[]> {
    return this.db.query<RoomListRow[]>(
      `${ROOM_SELECT},
              COALESCE(lm.id, 0) AS last_id,
              CASE WHEN ms.user_id IS NULL THEN 0 ELSE (
                SELECT count(*)::int FROM (
                  SELECT 1 FROM messages x
                   WHERE x.room_id = r.id AND x.id > ms.last_read_message_id AND x.deleted_at IS NULL
                     AND x.author_id IS DISTINCT FROM $1
                   LIMIT ${UNREAD_CAP}) y) END AS unread
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

  async members(
    roomId: string,
    q: { after?: string; limit: number },
  ): Promise<{ items: MemberDto[]; more: boolean }> {
    const rows = await this.db.query<
      {
        user_id: string;
        username: string;
        display_name: string | null;
        role: Membership['role'];
        joined_at: Date;
      }[]
    >(
      `SELECT ms.user_id, u.username, u.display_name, ms.role, ms.joined_at
         FROM memberships ms JOIN users u ON u.id = ms.user_id
        WHERE ms.room_id = $1 AND ($2::varchar IS NULL OR lower(u.username) > lower($2))
        ORDER BY lower(u.username) LIMIT $3`,
      [roomId, q.after ?? null, q.limit + 1],
    );
    const items = rows.slice(0, q.limit).map((r) => ({
      userId: r.user_id,
      username: r.username,
      displayName: r.display_name,
      role: r.role,
      joinedAt: r.joined_at,
    }));
    return { items, more: rows.length > q.limit };
  }

  async membership(roomId: string, userId: string): Promise<Membership | null> {
    return this.db.getRepository(Membership).findOneBy({ roomId, userId });
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
   * race); false when the room is gone. A taken name is a 409.
   */
  async updateRoom(
    roomId: string,
    changes: Partial<Pick<Room, 'name' | 'description' | 'theme' | 'visibility'>>,
  ): Promise<boolean> {
    const set = Object.fromEntries(Object.entries(changes).filter(([, v]) => v !== undefined));
    const rooms = this.db.getRepository(Room);
    if (!Object.keys(set).length) return rooms.existsBy({ id: roomId });
    try {
      const result = await rooms.update({ id: roomId }, set);
      return (result.affected ?? 0) > 0;
    } catch (err) {
      if (isUniqueViolation(err)) throw AppError.conflict('A room with this name already exists');
      throw err;
    }
  }

  async deleteRoom(roomId: string): Promise<void> {
    await this.db.getRepository(Room).delete({ id: roomId });
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

  async directRoomId(directKey: string): Promise<string> {
    return (await this.db.getRepository(Room).findOneByOrFail({ directKey })).id;
  }

  /** True when the membership was added (false: already a member). */
  async insertMembership(em: EntityManager, roomId: string, userId: string): Promise<boolean> {
    const added = await em.query<unknown[]>(
      `INSERT INTO memberships (room_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING user_id`,
      [roomId, userId],
    );
    return added.length > 0;
  }

  /** True when a membership was removed. */
  async deleteMembership(em: EntityManager, roomId: string, userId: string): Promise<boolean> {
    const removed = await em.query<unknown>(
      `DELETE FROM memberships WHERE room_id = $1 AND user_id = $2 RETURNING user_id`,
      [roomId, userId],
    );
    return updatedRows(removed) > 0;
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
  ): Promise<{ lastReadMessageId: number; moved: boolean; unread: number } | null> {
    const rows = await this.db.query<
      { last_read_message_id: string; moved: boolean; unread: number }[]
    >(
      `WITH target AS (SELECT id FROM messages WHERE id = $3 AND room_id = $1),
            before AS (SELECT last_read_message_id AS prev FROM memberships WHERE room_id = $1 AND user_id = $2),
            upd AS (UPDATE memberships ms SET last_read_message_id = GREATEST(ms.last_read_message_id, target.id)
                      FROM target WHERE ms.room_id = $1 AND ms.user_id = $2
                    RETURNING ms.last_read_message_id)
       SELECT upd.last_read_message_id, upd.last_read_message_id > before.prev AS moved,
              (SELECT count(*)::int FROM (SELECT 1 FROM messages x WHERE x.room_id = $1
                  AND x.id > upd.last_read_message_id AND x.deleted_at IS NULL
                  AND x.author_id IS DISTINCT FROM $2 LIMIT ${UNREAD_CAP}) y) AS unread
         FROM upd, before`,
      [roomId, userId, messageId],
    );
    if (!rows.length) return null;
    return {
      lastReadMessageId: Number(rows[0].last_read_message_id),
      moved: rows[0].moved,
      unread: rows[0].unread,
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
    memberCount: r.member_count,
    joined: r.my_role !== null,
    myRole: r.my_role,
  };
}
