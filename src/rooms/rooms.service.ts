import { Injectable } from '@nestjs/common';
import { AccessPolicy } from '../access/access.policy';
import type { AuthUser } from '../auth/auth-user';
import { AuditService } from '../audit/audit.service';
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
  NotifySettingDto,
  ReadStateDto,
  RoomDto,
  RoomPageDto,
  RoomSummaryDto,
  UpdateRoomDto,
} from './dto/room.dto';
import type { EntityManager } from 'typeorm';
import type { NotifyLevel, RoomKind } from './room.entity';
import { RoomMembersCache } from './room-members.cache';
import { RoomStore, toRoomDto } from './room.store';

/** What a level means in a room of this kind: `default` is `all` where every message is direct. */
export function effectiveLevel(
  level: NotifyLevel,
  kind: RoomKind,
): Exclude<NotifyLevel, 'default'> {
  if (level !== 'default') return level;
  return kind === 'group' ? 'mentions' : 'all';
}

/**
 * Rooms and memberships: policy and orchestration. Who may do what is AccessPolicy's; the SQL is
 * RoomStore's; system messages go through MessageWriter (announced after commit).
 *
 * Audited, in the change's transaction: creating and changing group rooms, deleting any room
 * through the admin route, and adding or removing someone else's membership. Creating direct
 * rooms and persona conversations, and their owners renaming or deleting conversations, are
 * not: they are private to their members and made by using Parlor, not by staff (admins may not
 * even see conversations).
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
    private readonly audit: AuditService,
    private readonly memberNames: RoomMembersCache,
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
    const page = rows.slice(0, q.limit).map((r) => toRoomDto(r));
    // The latest message of the rooms one is in only: a public room's history is read after
    // joining (and a ban, which removes the membership, stops it), the list being no way round.
    const lastIds = page.flatMap((r, i) => {
      const id = Number(rows[i].last_id);
      return r.joined && id > 0 ? [id] : [];
    });
    const last = new Map((await this.messages.findByIds(lastIds)).map((m) => [m.id, m]));
    const items: RoomSummaryDto[] = page.map((room, i) => ({
      ...room,
      unreadCount: rows[i].unread,
      unreadMentions: rows[i].unread_mentions,
      lastReadMessageId: Number(rows[i].last_read_message_id ?? 0),
      lastMessage: room.joined ? (last.get(Number(rows[i].last_id)) ?? null) : null,
      notify: rows[i].notify ?? null,
    }));
    const tail = rows[page.length - 1];
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
    const room = await this.writer.transaction(async ({ em }) => {
      const visibility = dto.visibility ?? 'public';
      const created = await this.store.insertRoom(
        em,
        { ...dto, visibility, kind: 'group', createdBy: admin.id },
        admin.id,
      );
      const details = { name: created.name, visibility };
      await this.recordRoom(em, admin, 'room.create', created.id, details);
      return created;
    });
    return this.announceCreated(room.id, admin.id, [admin.id]);
  }

  async update(admin: AuthUser, roomId: string, dto: UpdateRoomDto): Promise<RoomDto> {
    const { room } = await this.access.room(admin, roomId, 'manage');
    if (room.kind !== 'group') throw AppError.invalid('Only group rooms can be changed here');
    // Only what differs from the row is written, recorded and announced: a PATCH that changes
    // nothing (empty, or the values the room has) leaves no audit row and tells nobody.
    const changed = await this.writer.transaction(async ({ em }) => {
      const changes = await this.store.updateRoom(roomId, dto, em);
      if (!changes) throw AppError.notFound('Room');
      if (!Object.keys(changes).length) return false;
      await this.recordRoom(em, admin, 'room.update', roomId, { name: room.name, changes });
      return true;
    });
    if (!changed) return this.store.load(roomId, admin.id);
    return this.announceUpdated(roomId, admin.id);
  }

  /**
   * Sets a room's slow mode (the moderation module has asked the policy): the change and
   * `record` (its audit row, given the interval the row had) in one transaction, then
   * `room.updated` (RoomDto.slowModeMs). Setting the interval the room has already changes,
   * records and announces nothing.
   */
  async setSlowMode(
    roomId: string,
    ms: number,
    viewerId: string,
    record: (em: EntityManager, previousMs: number) => Promise<void>,
  ): Promise<RoomDto> {
    const changed = await this.writer.transaction(async ({ em }) => {
      const set = await this.store.setSlowMode(em, roomId, ms);
      if (!set) throw AppError.notFound('Room');
      if (set === 'unchanged') return false;
      await record(em, set.previousMs);
      return true;
    });
    if (!changed) return this.store.load(roomId, viewerId);
    return this.announceUpdated(roomId, viewerId);
  }

  /** Deletes the room and everything in it; live sockets are told through `room.deleted`. */
  async remove(admin: AuthUser, roomId: string): Promise<void> {
    const { room } = await this.access.room(admin, roomId, 'manage');
    const listed = room.kind === 'group' && room.visibility === 'public';
    // An admin's deletion is audited whatever the kind (a conversation's name stays private).
    const details = { kind: room.kind, ...(room.kind !== 'conversation' && { name: room.name }) };
    await this.deleteRoom(roomId, listed, (em) =>
      this.recordRoom(em, admin, 'room.delete', roomId, details),
    );
  }

  /** Deletes a room without the admin check (conversations, by their owner). */
  removeOwned(roomId: string): Promise<void> {
    return this.deleteRoom(roomId, false);
  }

  /**
   * `listedForAll`: a public group room, in every user's room list. `audit` runs in the
   * deletion's transaction.
   */
  private async deleteRoom(
    roomId: string,
    listedForAll: boolean,
    audit?: (em: EntityManager) => Promise<void>,
  ): Promise<void> {
    const memberIds = await this.store.memberIds(roomId);
    await this.writer.transaction(async ({ em }) => {
      await this.store.deleteRoom(roomId, em);
      await audit?.(em);
    });
    this.events.emit('room.deleted', { roomId, memberIds, public: listedForAll });
  }

  /** Renames a room without the admin check (conversations, by their owner). */
  async renameOwned(roomId: string, name: string, viewerId: string): Promise<RoomDto> {
    if (!(await this.store.updateRoom(roomId, { name }))) throw AppError.notFound('Room');
    return this.announceUpdated(roomId, viewerId);
  }

  /** Join a public group room. Idempotent: joining twice writes one "joined" message. */
  /** Join a public group room (not while it is archived or a ban holds). */
  async join(user: AuthUser, roomId: string): Promise<RoomDto> {
    const { membership } = await this.access.room(user, roomId, 'join');
    if (!membership) await this.addMembership(roomId, user, `${user.username} joined`);
    return this.store.load(roomId, user.id);
  }

  async leave(user: AuthUser, roomId: string): Promise<void> {
    const { room, membership } = await this.access.room(user, roomId, 'leave');
    if (!membership) return;
    if (room.kind !== 'group') throw AppError.invalid(`You cannot leave a ${room.kind} room`);
    const left = await this.removeMembership(roomId, user.id, `${user.username} left`, 'left');
    // Nothing removed: left already, or muted since the check above (the policy says why).
    if (!left) await this.access.room(user, roomId, 'leave');
  }

  async members(user: AuthUser, roomId: string, q: ListMembersQuery): Promise<MemberPageDto> {
    await this.access.room(user, roomId, 'read');
    const { items, more } = await this.store.members(roomId, q);
    const nextCursor = more ? items[items.length - 1].username : null;
    // A mute's reason: the muted member's own, and the room's moderators' (asked only when
    // the page holds someone else's).
    const others = items.some((m) => m.muteReason !== null && m.userId !== user.id);
    if (!others || (await this.access.may(user, roomId, 'moderate'))) return { items, nextCursor };
    return {
      items: items.map((m) => (m.userId === user.id ? m : { ...m, muteReason: null })),
      nextCursor,
    };
  }

  /** Invite: admins, and owners of the room. Group rooms only. */
  async addMember(actor: AuthUser, roomId: string, userId: string): Promise<MemberDto> {
    const { room } = await this.access.room(actor, roomId, 'invite');
    if (room.kind !== 'group')
      throw AppError.invalid(`Members of a ${room.kind} room cannot be changed`);
    const target = await this.users.findById(userId);
    if (!target || target.disabled) throw AppError.notFound('User');
    await this.access.admit(userId, roomId);
    const text = `${target.username} was added by ${actor.username}`;
    await this.addMembership(roomId, target, text, actor);
    const m = await this.store.member(roomId, userId);
    if (!m) throw AppError.notFound('Member'); // removed again in between
    return m;
  }

  async removeMember(admin: AuthUser, roomId: string, userId: string): Promise<void> {
    const { room } = await this.access.room(admin, roomId, 'manage');
    if (room.kind !== 'group')
      throw AppError.invalid(`Members of a ${room.kind} room cannot be changed`);
    const target = await this.users.findById(userId);
    if (!target || !(await this.store.isMember(roomId, userId))) throw AppError.notFound('Member');
    const text = `${target.username} was removed`;
    await this.removeMembership(roomId, userId, text, 'removed', admin);
  }

  /** Moves the read marker forward (never back); answers the new unread count. */
  async markRead(user: AuthUser, roomId: string, messageId: number): Promise<ReadStateDto> {
    await this.access.room(user, roomId, 'markRead');
    const read = await this.store.markRead(roomId, user.id, messageId);
    if (!read) throw AppError.notFound('Message');
    const { lastReadMessageId } = read;
    if (read.moved)
      this.events.emit('read.updated', { roomId, userId: user.id, lastReadMessageId });
    return {
      roomId,
      lastReadMessageId,
      unreadCount: read.unread,
      unreadMentions: read.unreadMentions,
    };
  }

  /**
   * A member's notification level in the room (their own: any member, muted or not, archived
   * room or not, as for read markers).
   */
  async setNotify(user: AuthUser, roomId: string, level: NotifyLevel): Promise<NotifySettingDto> {
    const { room } = await this.access.room(user, roomId, 'markRead');
    if (!(await this.store.setNotify(roomId, user.id, level))) throw AppError.notFound('Room');
    this.memberNames.changed(roomId);
    return { roomId, level, effective: effectiveLevel(level, room.kind) };
  }

  /** The one direct room between two users, created once even under concurrent calls. */
  async direct(user: AuthUser, otherId: string): Promise<RoomDto> {
    if (otherId === user.id) throw AppError.invalid('A direct room needs another user');
    const other = await this.users.findById(otherId);
    if (!other || other.disabled) throw AppError.notFound('User');
    const directKey = [user.id, otherId].sort().join(':');
    // The room found in place of ours may be deleted before it is read: then, as a moment
    // later, there is none, and this call creates it.
    for (let attempt = 1; ; attempt++) {
      const created = await this.writer.transaction(({ em }) =>
        this.store.insertDirect(em, `${user.username}, ${other.username}`, directKey, user.id, [
          user.id,
          otherId,
        ]),
      );
      if (created) return this.announceCreated(created, user.id, [user.id, otherId]);
      const existing = await this.store.directRoomId(directKey);
      if (existing) return this.store.load(existing, user.id);
      if (attempt === 3) throw AppError.notFound('Room');
    }
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

  /**
   * The one emit of `room.updated`: after commit. The changer gets the room as they see it; the
   * event goes to the room's channel (every member), so it carries no `joined`/`myRole`.
   */
  private async announceUpdated(roomId: string, changerId: string): Promise<RoomDto> {
    const room = await this.store.load(roomId, changerId);
    const { joined: _joined, myRole: _myRole, ...forEveryone } = room;
    this.events.emit('room.updated', { room: forEveryone });
    return room;
  }

  /**
   * The one emit of `room.created`: after commit, as the creator sees the room. That view is
   * also right for every other id in `memberIds`: group rooms and conversations are announced
   * to their creator (the owner) alone, and both members of a direct room are plain members
   * (`joined: true`, `myRole: 'member'`). Everyone else gets a public group room with
   * `joined: false, myRole: null` (chat.broadcaster.ts).
   */
  private async announceCreated(
    roomId: string,
    viewerId: string,
    memberIds: string[],
  ): Promise<RoomDto> {
    const room = await this.store.load(roomId, viewerId);
    this.events.emit('room.created', { room, memberIds });
    return room;
  }

  /**
   * Under the per-(room, user) membership lock a ban also takes, and only if the room is not
   * archived and no ban holds (checked by the insert itself): a join racing a ban never leaves
   * a membership behind. A refusal is explained by the policy (FORBIDDEN with the reason).
   */
  private async addMembership(
    roomId: string,
    user: { id: string; username: string; displayName: string | null },
    text: string,
    by?: AuthUser,
  ): Promise<void> {
    const { id, username, displayName } = user;
    const admission = await this.writer.transaction(async (tx) => {
      await this.store.lockMembership(tx.em, roomId, id);
      const admitted = await this.store.insertMembership(tx.em, roomId, id);
      if (admitted !== 'added') return admitted;
      if (by && by.id !== id) await this.recordMember(tx.em, by, 'member.add', roomId, id);
      const joined = await tx.notice(roomId, text);
      // Earlier history is not "unread" for a newcomer.
      await this.store.setLastRead(tx.em, roomId, id, joined.id);
      // Before the notice: the newcomer's sockets subscribe, then hear it.
      tx.afterCommit(() =>
        this.events.emit('member.joined', { roomId, user: { id, username, displayName } }),
      );
      return admitted;
    });
    if (admission !== 'refused') return;
    await this.access.admit(id, roomId);
    throw AppError.conflict('The room changed meanwhile: try again'); // the ban was lifted
  }

  /** True when the membership was removed. Leaving oneself is refused while muted. */
  private removeMembership(
    roomId: string,
    userId: string,
    text: string,
    reason: 'left' | 'removed',
    by?: AuthUser,
  ): Promise<boolean> {
    return this.writer.transaction(async (tx) => {
      await tx.lockRoom(roomId); // before the row: the order the send statement takes them in
      if (!(await this.store.deleteMembership(tx.em, roomId, userId, reason === 'left')))
        return false;
      if (by && by.id !== userId)
        await this.recordMember(tx.em, by, 'member.remove', roomId, userId);
      await tx.notice(roomId, text);
      // Before the notice: the member's sockets stop receiving the room first.
      tx.afterCommit(() => this.events.emit('member.left', { roomId, userId, reason }));
      return true;
    });
  }

  private recordRoom(
    em: EntityManager,
    actor: AuthUser,
    action: 'room.create' | 'room.update' | 'room.delete',
    roomId: string,
    details: Record<string, unknown>,
  ): Promise<void> {
    const target = { targetType: 'room', targetId: roomId, roomId } as const;
    return this.audit.record({ actorId: actor.id, action, ...target, details }, em);
  }

  private recordMember(
    em: EntityManager,
    actor: AuthUser,
    action: 'member.add' | 'member.remove',
    roomId: string,
    userId: string,
  ): Promise<void> {
    const target = { targetType: 'user', targetId: userId, roomId } as const;
    return this.audit.record({ actorId: actor.id, action, ...target }, em);
  }
}
