import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, EntityManager, Repository } from 'typeorm';
import type { AuthUser } from '../auth/auth-user';
import { DomainEvents } from '../common/domain-events';
import { AppError } from '../common/errors';
import { updatedRows } from '../common/sql';
import { MessageStore } from '../messages/message-store';
import { UsersService } from '../users/users.service';
import {
  CreateRoomDto,
  ListMembersQuery,
  ListRoomsQuery,
  MemberPageDto,
  ReadStateDto,
  RoomDto,
  RoomPageDto,
  RoomSummaryDto,
  UpdateRoomDto,
} from './dto/room.dto';
import { Membership, Room } from './room.entity';

const UNIQUE_VIOLATION = '23505';
const UNREAD_CAP = 1000;

/**
 * What the caller may do with a room:
 * - view: see the room itself (members; anyone for public group rooms; admins);
 * - read: history, members, search (members; admins);
 * - write: send, react, mark read (members only: admins join first).
 * Rooms you may not view are 404, never 403, so private rooms do not leak their existence.
 * Conversations are their owner's alone: admins get 404 there too.
 */
export type Access = 'view' | 'read' | 'write';

export interface RoomAccess {
  room: Room;
  membership: Membership | null;
}

interface RoomRow {
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
  unread: number;
  last_id: string | null;
}

const ROOM_SELECT = `
  SELECT r.id, r.name, r.description, r.theme, r.kind, r.visibility, r.created_by, r.created_at, r.updated_at,
         (SELECT count(*)::int FROM memberships c WHERE c.room_id = r.id) AS member_count,
         ms.role AS my_role, ms.last_read_message_id`;

@Injectable()
export class RoomsService {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    @InjectRepository(Room) private readonly rooms: Repository<Room>,
    @InjectRepository(Membership) private readonly memberships: Repository<Membership>,
    private readonly messages: MessageStore,
    private readonly users: UsersService,
    private readonly events: DomainEvents,
  ) {}

  /** The one access rule for rooms, used by every route and socket command touching a room. */
  async access(user: AuthUser, roomId: string, need: Access): Promise<RoomAccess> {
    const [room, membership] = await Promise.all([
      this.rooms.findOneBy({ id: roomId }),
      this.memberships.findOneBy({ roomId, userId: user.id }),
    ]);
    if (!room) throw AppError.notFound('Room');
    if (membership) return { room, membership };
    const isAdmin = user.role === 'admin' && room.kind !== 'conversation';
    const isPublic = room.kind === 'group' && room.visibility === 'public';
    if (!isAdmin && !isPublic) throw AppError.notFound('Room');
    if (need === 'view' || (need === 'read' && isAdmin)) return { room, membership: null };
    throw AppError.forbidden(isPublic ? 'Join the room first' : 'Not a member of this room');
  }

  isMember(roomId: string, userId: string): Promise<boolean> {
    return this.memberships.existsBy({ roomId, userId });
  }

  async memberIds(roomId: string): Promise<string[]> {
    const rows = await this.memberships.find({ where: { roomId }, select: { userId: true } });
    return rows.map((r) => r.userId);
  }

  /** Ids of every room the user belongs to (the gateway subscribes sockets to them). */
  async roomIdsOf(userId: string): Promise<string[]> {
    const rows = await this.memberships.find({ where: { userId }, select: { roomId: true } });
    return rows.map((r) => r.roomId);
  }

  async list(user: AuthUser, q: ListRoomsQuery): Promise<RoomPageDto> {
    const [cursorActivity, cursorId] = q.cursor ? q.cursor.split('_') : [null, null];
    const rows = await this.db.query<RoomRow[]>(
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
      [user.id, q.kind ?? null, cursorActivity, cursorId, q.limit + 1],
    );
    const page = rows.slice(0, q.limit);
    const lastIds = page.map((r) => Number(r.last_id)).filter((id) => id > 0);
    const last = new Map((await this.messages.findByIds(lastIds)).map((m) => [m.id, m]));
    const items: RoomSummaryDto[] = page.map((r) => ({
      ...toRoomDto(r),
      unreadCount: r.unread,
      lastReadMessageId: Number(r.last_read_message_id ?? 0),
      lastMessage: last.get(Number(r.last_id)) ?? null,
    }));
    const tail = page[page.length - 1];
    return { items, nextCursor: rows.length > q.limit ? `${tail.last_id}_${tail.id}` : null };
  }

  async get(user: AuthUser, roomId: string): Promise<RoomDto> {
    await this.access(user, roomId, 'view');
    return this.load(roomId, user.id);
  }

  async create(admin: AuthUser, dto: CreateRoomDto): Promise<RoomDto> {
    const room = await this.db.transaction(async (em) => {
      const saved = await this.saveUnique(
        em,
        em.create(Room, { ...dto, kind: 'group', createdBy: admin.id }),
      );
      await em.insert(Membership, { roomId: saved.id, userId: admin.id, role: 'owner' });
      return saved;
    });
    const dto2 = await this.load(room.id, admin.id);
    this.events.emit('room.created', { room: dto2, memberIds: [admin.id] });
    return dto2;
  }

  async update(admin: AuthUser, roomId: string, dto: UpdateRoomDto): Promise<RoomDto> {
    const { room } = await this.access(admin, roomId, 'view');
    if (room.kind !== 'group') throw AppError.invalid('Only group rooms can be changed here');
    await this.saveUnique(this.db.manager, Object.assign(room, dto));
    const updated = await this.load(roomId, admin.id);
    this.events.emit('room.updated', { room: updated });
    return updated;
  }

  /** Deletes the room and everything in it; live sockets are told through `room.deleted`. */
  async remove(admin: AuthUser, roomId: string): Promise<void> {
    const { room } = await this.access(admin, roomId, 'view');
    const memberIds = await this.memberIds(roomId);
    await this.rooms.delete({ id: roomId });
    const listedForAll = room.kind === 'group' && room.visibility === 'public';
    this.events.emit('room.deleted', { roomId, memberIds, public: listedForAll });
  }

  /** Deletes a room without the admin check (conversations, by their owner). */
  async removeOwned(roomId: string): Promise<void> {
    const memberIds = await this.memberIds(roomId);
    await this.rooms.delete({ id: roomId });
    this.events.emit('room.deleted', { roomId, memberIds, public: false });
  }

  /** Renames a room without the admin check (conversations, by their owner). */
  async renameOwned(roomId: string, name: string, viewerId: string): Promise<RoomDto> {
    await this.rooms.update({ id: roomId }, { name });
    const room = await this.load(roomId, viewerId);
    this.events.emit('room.updated', { room });
    return room;
  }

  /** Join a public group room. Idempotent: joining twice writes one "joined" message. */
  async join(user: AuthUser, roomId: string): Promise<RoomDto> {
    const { room, membership } = await this.access(user, roomId, 'view');
    if (!membership) {
      if (room.kind !== 'group' || room.visibility !== 'public') {
        throw AppError.forbidden('Private rooms are joined by invitation');
      }
      await this.addMembership(roomId, user, `${user.username} joined`);
    }
    return this.load(roomId, user.id);
  }

  async leave(user: AuthUser, roomId: string): Promise<void> {
    const { room, membership } = await this.access(user, roomId, 'view');
    if (!membership) return;
    if (room.kind !== 'group') throw AppError.invalid(`You cannot leave a ${room.kind} room`);
    await this.removeMembership(roomId, user.id, `${user.username} left`, 'left');
  }

  async members(user: AuthUser, roomId: string, q: ListMembersQuery): Promise<MemberPageDto> {
    await this.access(user, roomId, 'read');
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
    return { items, nextCursor: rows.length > q.limit ? items[items.length - 1].username : null };
  }

  /** Invite: admins, and owners of the room. Group rooms only. */
  async addMember(
    actor: AuthUser,
    roomId: string,
    userId: string,
  ): Promise<MemberPageDto['items'][number]> {
    const { room, membership } = await this.access(actor, roomId, 'view');
    if (actor.role !== 'admin' && membership?.role !== 'owner') {
      throw AppError.forbidden('Only admins and room owners can add members');
    }
    if (room.kind !== 'group')
      throw AppError.invalid(`Members of a ${room.kind} room cannot be changed`);
    const target = await this.users.findById(userId);
    if (!target || target.disabled) throw AppError.notFound('User');
    await this.addMembership(roomId, target, `${target.username} was added by ${actor.username}`);
    const m = await this.memberships.findOneByOrFail({ roomId, userId });
    return {
      userId,
      username: target.username,
      displayName: target.displayName,
      role: m.role,
      joinedAt: m.joinedAt,
    };
  }

  async removeMember(admin: AuthUser, roomId: string, userId: string): Promise<void> {
    const { room } = await this.access(admin, roomId, 'view');
    if (room.kind !== 'group')
      throw AppError.invalid(`Members of a ${room.kind} room cannot be changed`);
    const target = await this.users.findById(userId);
    if (!target || !(await this.isMember(roomId, userId))) throw AppError.notFound('Member');
    await this.removeMembership(roomId, userId, `${target.username} was removed`, 'removed');
  }

  /** Moves the read marker forward (never back); answers the new unread count. */
  async markRead(user: AuthUser, roomId: string, messageId: number): Promise<ReadStateDto> {
    await this.access(user, roomId, 'write');
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
      [roomId, user.id, messageId],
    );
    if (!rows.length) throw AppError.notFound('Message');
    const lastReadMessageId = Number(rows[0].last_read_message_id);
    if (rows[0].moved)
      this.events.emit('read.updated', { roomId, userId: user.id, lastReadMessageId });
    return { roomId, lastReadMessageId, unreadCount: rows[0].unread };
  }

  /** The one direct room between two users, created once even under concurrent calls. */
  async direct(user: AuthUser, otherId: string): Promise<RoomDto> {
    if (otherId === user.id) throw AppError.invalid('A direct room needs another user');
    const other = await this.users.findById(otherId);
    if (!other || other.disabled) throw AppError.notFound('User');
    const directKey = [user.id, otherId].sort().join(':');
    const created = await this.db.transaction(async (em) => {
      const inserted = await em.query<{ id: string }[]>(
        `INSERT INTO rooms (name, kind, visibility, direct_key, created_by)
         VALUES ($1, 'direct', 'private', $2, $3) ON CONFLICT (direct_key) DO NOTHING RETURNING id`,
        [`${user.username}, ${other.username}`, directKey, user.id],
      );
      if (!inserted.length) return null;
      await em.insert(Membership, [
        { roomId: inserted[0].id, userId: user.id, role: 'member' },
        { roomId: inserted[0].id, userId: otherId, role: 'member' },
      ]);
      return inserted[0].id;
    });
    const roomId = created ?? (await this.rooms.findOneByOrFail({ directKey })).id;
    const room = await this.load(roomId, user.id);
    if (created) this.events.emit('room.created', { room, memberIds: [user.id, otherId] });
    return room;
  }

  /** Creates a private room of kind `conversation` owned by `owner` (used by personas). */
  async createConversation(owner: AuthUser, name: string, theme = ''): Promise<Room> {
    return this.db.transaction(async (em) => {
      const room = await em.save(
        em.create(Room, {
          name,
          theme,
          kind: 'conversation',
          visibility: 'private',
          createdBy: owner.id,
        }),
      );
      await em.insert(Membership, { roomId: room.id, userId: owner.id, role: 'owner' });
      return room;
    });
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

  private async addMembership(
    roomId: string,
    user: { id: string; username: string; displayName: string | null },
    text: string,
  ): Promise<void> {
    const message = await this.db.transaction(async (em) => {
      const added = await em.query<unknown[]>(
        `INSERT INTO memberships (room_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING user_id`,
        [roomId, user.id],
      );
      if (!added.length) return null;
      const joined = await this.messages.insert({ roomId, role: 'system', content: text }, em);
      // Earlier history is not "unread" for a newcomer.
      await em.query(
        `UPDATE memberships SET last_read_message_id = $3 WHERE room_id = $1 AND user_id = $2`,
        [roomId, user.id, joined.id],
      );
      return joined;
    });
    if (!message) return;
    this.events.emit('member.joined', {
      roomId,
      user: { id: user.id, username: user.username, displayName: user.displayName },
    });
    this.events.emit('message.created', { message });
  }

  private async removeMembership(
    roomId: string,
    userId: string,
    text: string,
    reason: 'left' | 'removed',
  ) {
    const message = await this.db.transaction(async (em) => {
      const removed = await em.query<unknown>(
        `DELETE FROM memberships WHERE room_id = $1 AND user_id = $2 RETURNING user_id`,
        [roomId, userId],
      );
      return updatedRows(removed)
        ? this.messages.insert({ roomId, role: 'system', content: text }, em)
        : null;
    });
    if (!message) return;
    this.events.emit('member.left', { roomId, userId, reason });
    this.events.emit('message.created', { message });
  }

  private async saveUnique(em: EntityManager, room: Room): Promise<Room> {
    try {
      return await em.save(room);
    } catch (err) {
      if ((err as { code?: string }).code === UNIQUE_VIOLATION)
        throw AppError.conflict('A room with this name already exists');
      throw err;
    }
  }
}

function toRoomDto(r: RoomRow): RoomDto {
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
