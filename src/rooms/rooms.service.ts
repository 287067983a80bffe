import { Injectable } from '@nestjs/common';
import { AccessPolicy } from '../access/access.policy';
import type { AuthUser } from '../auth/auth-user';
import { AppError } from '../common/errors';
import { DomainEvents } from '../events/domain-events';
import { MessageStore } from '../messages/message-store';
import { MessageWriter } from '../messages/message-writer';
import { UsersService } from '../users/users.service';
import {
  CreateRoomDto,
  ListMembersQuery,
  ListRoomsQuery,
  MemberDto,
  MemberPageDto,
  ReadStateDto,
  RoomDto,
  RoomPageDto,
  RoomSummaryDto,
  UpdateRoomDto,
} from './dto/room.dto';
import type { EntityManager } from 'typeorm';
import { RoomStore, toRoomDto } from './room.store';

/**
 * Rooms and memberships: policy and orchestration. Who may do what is AccessPolicy's; the SQL is
 * RoomStore's; system messages go through MessageWriter (announced after commit).
 */
@Injectable()
export class RoomsService {
  constructor(
    private readonly store: RoomStore,
    private readonly access: AccessPolicy,
    private readonly writer: MessageWriter,
    private readonly messages: MessageStore,
    private readonly users: UsersService,
    private readonly events: DomainEvents,
  ) {}

  /** Ids of every room the user belongs to (the chat module subscribes sockets to them). */
  roomIdsOf(userId: string): Promise<string[]> {
    return this.store.roomIdsOf(userId);
  }

  async list(user: AuthUser, q: ListRoomsQuery): Promise<RoomPageDto> {
    const [activity, id] = q.cursor ? q.cursor.split('_') : [];
    const rows = await this.store.list(user.id, {
      kind: q.kind,
      cursor: q.cursor ? { activity, id } : undefined,
      limit: q.limit + 1,
    });
    const page = rows.slice(0, q.limit);
    const lastIds = page.map((r) => Number(r.last_id)).filter((n) => n > 0);
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
    await this.access.room(user, roomId, 'view');
    return this.store.load(roomId, user.id);
  }

  /** A room as the given user sees it (no access check: callers have made theirs). */
  load(roomId: string, userId: string): Promise<RoomDto> {
    return this.store.load(roomId, userId);
  }

  async create(admin: AuthUser, dto: CreateRoomDto): Promise<RoomDto> {
    const room = await this.writer.transaction(({ em }) =>
      this.store.insertRoom(
        em,
        { ...dto, visibility: dto.visibility ?? 'public', kind: 'group', createdBy: admin.id },
        admin.id,
      ),
    );
    return this.announceCreated(room.id, admin.id, [admin.id]);
  }

  async update(admin: AuthUser, roomId: string, dto: UpdateRoomDto): Promise<RoomDto> {
    const { room } = await this.access.room(admin, roomId, 'manage');
    if (room.kind !== 'group') throw AppError.invalid('Only group rooms can be changed here');
    if (!(await this.store.updateRoom(roomId, dto))) throw AppError.notFound('Room');
    const updated = await this.store.load(roomId, admin.id);
    this.events.emit('room.updated', { room: updated });
    return updated;
  }

  /** Deletes the room and everything in it; live sockets are told through `room.deleted`. */
  async remove(admin: AuthUser, roomId: string): Promise<void> {
    const { room } = await this.access.room(admin, roomId, 'manage');
    await this.deleteRoom(roomId, room.kind === 'group' && room.visibility === 'public');
  }

  /** Deletes a room without the admin check (conversations, by their owner). */
  removeOwned(roomId: string): Promise<void> {
    return this.deleteRoom(roomId, false);
  }

  /** `listedForAll`: a public group room, in every user's room list. */
  private async deleteRoom(roomId: string, listedForAll: boolean): Promise<void> {
    const memberIds = await this.store.memberIds(roomId);
    await this.store.deleteRoom(roomId);
    this.events.emit('room.deleted', { roomId, memberIds, public: listedForAll });
  }

  /** Renames a room without the admin check (conversations, by their owner). */
  async renameOwned(roomId: string, name: string, viewerId: string): Promise<RoomDto> {
    if (!(await this.store.updateRoom(roomId, { name }))) throw AppError.notFound('Room');
    const room = await this.store.load(roomId, viewerId);
    this.events.emit('room.updated', { room });
    return room;
  }

  /** Join a public group room. Idempotent: joining twice writes one "joined" message. */
  async join(user: AuthUser, roomId: string): Promise<RoomDto> {
    const { room, membership } = await this.access.room(user, roomId, 'view');
    if (!membership) {
      if (room.kind !== 'group' || room.visibility !== 'public') {
        throw AppError.forbidden('Private rooms are joined by invitation');
      }
      await this.addMembership(roomId, user, `${user.username} joined`);
    }
    return this.store.load(roomId, user.id);
  }

  async leave(user: AuthUser, roomId: string): Promise<void> {
    const { room, membership } = await this.access.room(user, roomId, 'view');
    if (!membership) return;
    if (room.kind !== 'group') throw AppError.invalid(`You cannot leave a ${room.kind} room`);
    await this.removeMembership(roomId, user.id, `${user.username} left`, 'left');
  }

  async members(user: AuthUser, roomId: string, q: ListMembersQuery): Promise<MemberPageDto> {
    await this.access.room(user, roomId, 'read');
    const { items, more } = await this.store.members(roomId, q);
    return { items, nextCursor: more ? items[items.length - 1].username : null };
  }

  /** Invite: admins, and owners of the room. Group rooms only. */
  async addMember(actor: AuthUser, roomId: string, userId: string): Promise<MemberDto> {
    const { room } = await this.access.room(actor, roomId, 'invite');
    if (room.kind !== 'group')
      throw AppError.invalid(`Members of a ${room.kind} room cannot be changed`);
    const target = await this.users.findById(userId);
    if (!target || target.disabled) throw AppError.notFound('User');
    await this.addMembership(roomId, target, `${target.username} was added by ${actor.username}`);
    const m = await this.store.membership(roomId, userId);
    if (!m) throw AppError.notFound('Member'); // removed again in between
    return {
      userId,
      username: target.username,
      displayName: target.displayName,
      role: m.role,
      joinedAt: m.joinedAt,
    };
  }

  async removeMember(admin: AuthUser, roomId: string, userId: string): Promise<void> {
    const { room } = await this.access.room(admin, roomId, 'manage');
    if (room.kind !== 'group')
      throw AppError.invalid(`Members of a ${room.kind} room cannot be changed`);
    const target = await this.users.findById(userId);
    if (!target || !(await this.store.isMember(roomId, userId))) throw AppError.notFound('Member');
    await this.removeMembership(roomId, userId, `${target.username} was removed`, 'removed');
  }

  /** Moves the read marker forward (never back); answers the new unread count. */
  async markRead(user: AuthUser, roomId: string, messageId: number): Promise<ReadStateDto> {
    await this.access.room(user, roomId, 'write');
    const read = await this.store.markRead(roomId, user.id, messageId);
    if (!read) throw AppError.notFound('Message');
    const { lastReadMessageId } = read;
    if (read.moved)
      this.events.emit('read.updated', { roomId, userId: user.id, lastReadMessageId });
    return { roomId, lastReadMessageId, unreadCount: read.unread };
  }

  /** The one direct room between two users, created once even under concurrent calls. */
  async direct(user: AuthUser, otherId: string): Promise<RoomDto> {
    if (otherId === user.id) throw AppError.invalid('A direct room needs another user');
    const other = await this.users.findById(otherId);
    if (!other || other.disabled) throw AppError.notFound('User');
    const directKey = [user.id, otherId].sort().join(':');
    const created = await this.writer.transaction(({ em }) =>
      this.store.insertDirect(em, `${user.username}, ${other.username}`, directKey, user.id, [
        user.id,
        otherId,
      ]),
    );
    if (created) return this.announceCreated(created, user.id, [user.id, otherId]);
    return this.store.load(await this.store.directRoomId(directKey), user.id);
  }

  /**
   * Creates a private room of kind `conversation` owned by `owner` (used by personas): `setup`
   * runs in the same transaction (the persona's link), so a failure leaves nothing behind.
   */
  async createConversation(
    owner: AuthUser,
    name: string,
    setup: (em: EntityManager, roomId: string) => Promise<void>,
  ): Promise<RoomDto> {
    const room = await this.writer.transaction(async ({ em }) => {
      const created = await this.store.insertRoom(
        em,
        { name, kind: 'conversation', visibility: 'private', createdBy: owner.id },
        owner.id,
      );
      await setup(em, created.id);
      return created;
    });
    return this.announceCreated(room.id, owner.id, [owner.id]);
  }

  /** The one emit of `room.created`: after commit, as the creator sees the room. */
  private async announceCreated(
    roomId: string,
    viewerId: string,
    memberIds: string[],
  ): Promise<RoomDto> {
    const room = await this.store.load(roomId, viewerId);
    this.events.emit('room.created', { room, memberIds });
    return room;
  }

  private async addMembership(
    roomId: string,
    user: { id: string; username: string; displayName: string | null },
    text: string,
  ): Promise<void> {
    const { id, username, displayName } = user;
    await this.writer.transaction(async (tx) => {
      if (!(await this.store.insertMembership(tx.em, roomId, id))) return;
      const joined = await tx.notice(roomId, text);
      // Earlier history is not "unread" for a newcomer.
      await this.store.setLastRead(tx.em, roomId, id, joined.id);
      // Before the notice: the newcomer's sockets subscribe, then hear it.
      tx.afterCommit(() =>
        this.events.emit('member.joined', { roomId, user: { id, username, displayName } }),
      );
    });
  }

  private async removeMembership(
    roomId: string,
    userId: string,
    text: string,
    reason: 'left' | 'removed',
  ): Promise<void> {
    await this.writer.transaction(async (tx) => {
      if (!(await this.store.deleteMembership(tx.em, roomId, userId))) return;
      await tx.notice(roomId, text);
      // Before the notice: the member's sockets stop receiving the room first.
      tx.afterCommit(() => this.events.emit('member.left', { roomId, userId, reason }));
    });
  }
}
