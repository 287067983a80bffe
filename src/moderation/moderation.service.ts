import { Injectable } from '@nestjs/common';
import { AccessPolicy } from '../access/access.policy';
import { AuditService } from '../audit/audit.service';
import type { AuthUser } from '../auth/auth-user';
import { AppError } from '../common/errors';
import { DomainEvents } from '../events/domain-events';
import { MessageWriter, type NoticeTx } from '../messages/message-writer';
import type { MemberDto, RoomDto } from '../rooms/dto/room.dto';
import { RoomStore } from '../rooms/room.store';
import { UsersService } from '../users/users.service';
import type { AssignableRole, BanDto, BanListDto, SanctionDto } from './dto/moderation.dto';
import { ModerationStore } from './moderation.store';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/**
 * Room moderation: moderators, mutes, bans, archive. Who may do each is AccessPolicy's
 * ('appoint', 'moderate' with `sanction`, 'manage'); each action is written and audited in one
 * transaction, and its domain event goes out after the commit.
 */
@Injectable()
export class ModerationService {
  constructor(
    private readonly store: ModerationStore,
    private readonly rooms: RoomStore,
    private readonly access: AccessPolicy,
    private readonly writer: MessageWriter,
    private readonly audit: AuditService,
    private readonly users: UsersService,
    private readonly events: DomainEvents,
  ) {}

  /** Makes a member a moderator or a member again (admins and the room owner). */
  async setRole(
    actor: AuthUser,
    roomId: string,
    userId: string,
    role: AssignableRole,
  ): Promise<MemberDto> {
    await this.access.room(actor, roomId, 'appoint');
    const member = await this.rooms.member(roomId, userId);
    if (!member) throw AppError.notFound('Member');
    if (member.role === 'owner') throw AppError.forbidden("The room owner's role cannot change");
    if (member.role === role) return member;
    await this.writer.transaction(async ({ em, afterCommit }) => {
      if (!(await this.rooms.setMemberRole(em, roomId, userId, role)))
        throw AppError.notFound('Member');
      await this.audit.record(
        {
          actorId: actor.id,
          action: 'member.role',
          targetType: 'user',
          targetId: userId,
          roomId,
          details: { from: member.role, to: role },
        },
        em,
      );
      afterCommit(() =>
        this.events.emit('member.role.changed', { roomId, userId, role, by: actor.id }),
      );
    });
    return this.member(roomId, userId);
  }

  /** Mutes a member: they still read; writes answer FORBIDDEN with the reason and the end. */
  async mute(actor: AuthUser, roomId: string, dto: SanctionDto): Promise<MemberDto> {
    await this.writer.transaction(await this.muting(actor, roomId, dto));
    return this.member(roomId, dto.userId);
  }

  /**
   * Checks a mute (the policy, the membership) and returns its write, to run in a transaction:
   * `mute`'s own, or a report's resolution, so the report closes only with the sanction.
   */
  async muting(
    actor: AuthUser,
    roomId: string,
    dto: SanctionDto,
  ): Promise<(tx: NoticeTx) => Promise<void>> {
    const { userId } = dto;
    const { grant, target } = await this.access.sanction(actor, roomId, userId);
    if (!target.membership) throw AppError.notFound('Member');
    const reason = dto.reason ?? '';
    const insiders = [userId, ...(await this.access.moderatorIds(roomId))];
    return async ({ em, afterCommit }) => {
      // Asked again with both parties' rows locked: a demotion of the actor or a promotion of
      // the target committed since is respected.
      const now = await this.rooms.lockSanctionParties(em, roomId, actor.id, userId, 'mute');
      this.access.sanctionableNow(grant, now);
      if (!now.target.membership) throw AppError.notFound('Member'); // left in between
      const muted = await this.rooms.mute(em, roomId, userId, dto.durationSec ?? null, reason);
      if (!muted) throw AppError.notFound('Member'); // left in between
      const until = iso(muted.until);
      await this.audit.record(
        {
          actorId: actor.id,
          action: 'member.mute',
          targetType: 'user',
          targetId: userId,
          roomId,
          reason,
          details: { until },
        },
        em,
      );
      afterCommit(() =>
        this.events.emit('member.muted', { roomId, userId, until, reason, by: actor.id, insiders }),
      );
    };
  }

  unmute(actor: AuthUser, roomId: string, userId: string): Promise<void> {
    return this.lift(actor, roomId, userId, 'mute');
  }

  /**
   * Bans a user (member or not): under the per-(room, user) membership lock that joins and
   * adds take too, the ban is written, the membership removed (with a notice) and the action
   * audited, in one transaction. After the commit, `member.banned` takes the user's sockets out
   * of the room on every instance.
   */
  async ban(actor: AuthUser, roomId: string, dto: SanctionDto): Promise<BanDto> {
    return this.writer.transaction(await this.banning(actor, roomId, dto));
  }

  /** Checks a ban and returns its write, to run in a transaction (as `muting`). */
  async banning(
    actor: AuthUser,
    roomId: string,
    dto: SanctionDto,
  ): Promise<(tx: NoticeTx) => Promise<BanDto>> {
    const { userId } = dto;
    const { grant } = await this.access.sanction(actor, roomId, userId);
    const user = await this.users.findById(userId);
    if (!user) throw AppError.notFound('User');
    const reason = dto.reason ?? '';
    const insiders = await this.access.moderatorIds(roomId);
    return async (tx) => {
      await this.rooms.lockMembership(tx.em, roomId, userId);
      // The room's lock before any row: the order the send statement and a member's removal
      // take them in (RoomStore.lockSanctionParties).
      await tx.lockRoom(roomId);
      // Asked again with both parties' rows locked: a demotion of the actor or a promotion of
      // the target committed since is respected.
      const now = await this.rooms.lockSanctionParties(tx.em, roomId, actor.id, userId, 'ban');
      this.access.sanctionableNow(grant, now);
      const { until, createdAt } = await this.store.ban(tx.em, {
        roomId,
        userId,
        durationSec: dto.durationSec ?? null,
        reason,
        bannedBy: actor.id,
      });
      if (await this.rooms.deleteMembership(tx.em, roomId, userId))
        await tx.notice(roomId, `${user.username} was banned`);
      await this.audit.record(
        {
          actorId: actor.id,
          action: 'member.ban',
          targetType: 'user',
          targetId: userId,
          roomId,
          reason,
          details: { until: iso(until) },
        },
        tx.em,
      );
      const banned = { roomId, userId, until: iso(until), reason, by: actor.id };
      // Before the notice: the user's sockets leave the room first.
      tx.afterCommit(() => this.events.emit('member.banned', { ...banned, insiders }));
      const { username } = user;
      return { userId, username, reason, bannedBy: actor.id, createdAt, until: banned.until };
    };
  }

  unban(actor: AuthUser, roomId: string, userId: string): Promise<void> {
    return this.lift(actor, roomId, userId, 'ban');
  }

  /** Lifts a mute or a ban in force (404 when there is none): audited, then announced. */
  private async lift(
    actor: AuthUser,
    roomId: string,
    userId: string,
    what: 'mute' | 'ban',
  ): Promise<void> {
    const { grant } = await this.access.sanction(actor, roomId, userId);
    await this.writer.transaction(async ({ em, afterCommit }) => {
      // Asked again with both parties' rows locked, as a mute's or a ban's write does (a lift's
      // write needs the lock a mute's does: at most the membership's update).
      const now = await this.rooms.lockSanctionParties(em, roomId, actor.id, userId, 'mute');
      this.access.sanctionableNow(grant, now);
      const lifted =
        what === 'mute'
          ? await this.rooms.unmute(em, roomId, userId)
          : await this.store.unban(em, roomId, userId);
      if (!lifted) throw AppError.notFound(what === 'mute' ? 'Mute' : 'Ban');
      await this.audit.record(
        {
          actorId: actor.id,
          action: `member.un${what}`,
          targetType: 'user',
          targetId: userId,
          roomId,
        },
        em,
      );
      const event = what === 'mute' ? 'member.unmuted' : 'member.unbanned';
      afterCommit(() => this.events.emit(event, { roomId, userId, by: actor.id }));
    });
  }

  async bans(actor: AuthUser, roomId: string): Promise<BanListDto> {
    await this.access.room(actor, roomId, 'moderate');
    return { items: await this.store.bans(roomId) };
  }

  /**
   * Archives (read-only for everyone, history kept) or unarchives a group room: admins only
   * ('manage'). Idempotent: archiving an archived room changes, records and announces nothing.
   */
  async archive(admin: AuthUser, roomId: string, archived: boolean): Promise<RoomDto> {
    const { room } = await this.access.room(admin, roomId, 'manage');
    if (room.kind !== 'group') throw AppError.invalid('Only group rooms can be archived');
    await this.writer.transaction(async ({ em, afterCommit }) => {
      const changed = await this.rooms.setArchived(em, roomId, archived);
      if (!changed) return;
      await this.audit.record(
        {
          actorId: admin.id,
          action: archived ? 'room.archive' : 'room.unarchive',
          targetType: 'room',
          targetId: roomId,
          roomId,
        },
        em,
      );
      const event = { roomId, archivedAt: iso(changed.archivedAt), by: admin.id };
      afterCommit(() => this.events.emit(archived ? 'room.archived' : 'room.unarchived', event));
    });
    return this.rooms.load(roomId, admin.id);
  }

  private async member(roomId: string, userId: string): Promise<MemberDto> {
    const member = await this.rooms.member(roomId, userId);
    if (!member) throw AppError.notFound('Member'); // removed in between
    return member;
  }
}
