import { Injectable } from '@nestjs/common';
import { AppError, ErrorCode } from '../common/errors';
import type { Membership, Room } from '../rooms/room.entity';
import type { SanctionDetails } from '../common/wire';
import { type AccessFacts, RoomStore, type Sanction } from '../rooms/room.store';
import type { Role } from '../users/user.entity';

/**
 * What a user may do with a room:
 * - view: see the room itself (members; anyone for public group rooms; admins);
 * - read: history, changes, members, search, edit history (members; admins);
 * - write: send, react, edit own messages (members only: admins join first); refused while the
 *   room is archived or the member is muted;
 * - markRead: move one's read marker (members, muted or not, archived room or not);
 * - join: become a member of a public group room oneself (refused while archived or banned);
 * - leave: stop being a member (refused while muted: the mute is on the membership, and
 *   leaving and rejoining must not lift it);
 * - invite: add members (admins, and the room's owners);
 * - appoint: make members moderators or members again (admins, and the room's owner; group
 *   rooms only);
 * - manage: change or delete the room, remove members, attach personas (admins; in
 *   conversations only their owner, who alone may view them);
 * - moderate: mute, ban, remove others' messages, slow mode, the room's reports and word
 *   filter (admins, and the room's owner and moderators; never in conversations).
 */
export type RoomAction =
  | 'view'
  | 'read'
  | 'write'
  | 'markRead'
  | 'join'
  | 'leave'
  | 'invite'
  | 'appoint'
  | 'manage'
  | 'moderate';

/** What a user may do with a message (always within what the room allows). */
export type MessageAction = 'edit' | 'delete' | 'react' | 'read';

export interface RoomGrant {
  room: Room;
  membership: Pick<Membership, 'role'> | null;
  /** The user's global role now (not the one in their token or socket). */
  role: Role;
  /** Set while the room is archived (read-only for everyone). */
  archivedAt: Date | null;
}

/** The part of a message the policy needs. */
export interface MessageRef {
  roomId: string;
  role: string;
  author: { id: string; kind: 'user' | 'persona' } | null;
}

/** A persona reply in progress: who asked for it, and where. */
export interface StreamRef {
  roomId: string;
  roomKind: Room['kind'];
  requesterId: string;
}

/**
 * The one place that answers "may user U do X on room R / message M / stream S", for REST and
 * sockets alike, always from current state: the user's role and membership are read from the
 * database at each decision (one statement), never from a token or a socket's handshake.
 *
 * Rooms you may not view are 404, never 403, so private rooms do not leak their existence;
 * conversations are their owner's alone (admins get 404 there too).
 */
@Injectable()
export class AccessPolicy {
  constructor(private readonly store: RoomStore) {}

  async room(user: { id: string }, roomId: string, action: RoomAction): Promise<RoomGrant> {
    return this.decide(await this.store.accessFacts(user.id, roomId), action);
  }

  /**
   * Whether the user may do `action` on the room now: false where `room` would refuse, with
   * FORBIDDEN or with NOT_FOUND (a room they may not view, or one that is gone).
   */
  async may(user: { id: string }, roomId: string, action: RoomAction): Promise<boolean> {
    try {
      await this.room(user, roomId, action);
      return true;
    } catch (err) {
      if (
        err instanceof AppError &&
        (err.code === ErrorCode.FORBIDDEN || err.code === ErrorCode.NOT_FOUND)
      )
        return false;
      throw err;
    }
  }

  private decide(facts: AccessFacts, action: RoomAction): RoomGrant {
    const { role, room, membership } = facts;
    if (!room || !role) throw AppError.notFound('Room');
    const isAdmin = role === 'admin' && room.kind !== 'conversation';
    const isPublic = room.kind === 'group' && room.visibility === 'public';
    if (!membership && !isAdmin && !isPublic) throw AppError.notFound('Room');
    const grant = { room, membership, role, archivedAt: facts.archivedAt };
    switch (action) {
      case 'view':
        return grant;
      case 'read':
        if (membership || isAdmin) return grant;
        throw AppError.forbidden('Join the room first');
      case 'write':
        if (!membership)
          throw AppError.forbidden(isPublic ? 'Join the room first' : 'Not a member of this room');
        if (facts.archivedAt) throw archived();
        if (facts.mute) throw sanctioned('You are muted in this room', facts.mute);
        return grant;
      case 'markRead':
        if (membership) return grant;
        throw AppError.forbidden(isPublic ? 'Join the room first' : 'Not a member of this room');
      case 'join':
        if (membership) return grant;
        if (!isPublic) throw AppError.forbidden('Private rooms are joined by invitation');
        this.admissible(facts);
        return grant;
      case 'leave':
        if (facts.mute) throw sanctioned('You cannot leave while muted', facts.mute);
        // A room keeps its owner: their leaving would leave a private room with nobody but
        // admins to invite or appoint, and a rejoin would make them a plain member.
        if (membership?.role === 'owner') {
          throw AppError.forbidden('The owner cannot leave the room (an admin can delete it)');
        }
        return grant;
      case 'invite':
        if (isAdmin || membership?.role === 'owner') return grant;
        throw AppError.forbidden('Only admins and room owners can add members');
      case 'appoint':
        if (room.kind !== 'group') throw AppError.forbidden('Only group rooms have moderators');
        if (isAdmin || membership?.role === 'owner') return grant;
        throw AppError.forbidden('Only admins and the room owner can change member roles');
      case 'moderate':
        return moderating(grant);
      case 'manage':
        // Admins manage every room they can see, their own conversations included.
        if (role === 'admin') return grant;
        throw AppError.forbidden('Requires role: admin');
    }
  }

  /**
   * May `userId` become a member of the room (joined, added, invited)? Refused while the room
   * is archived or a ban on the user is in force (FORBIDDEN with `details: { reason, until }`).
   * Asked about the user who would join, whoever is adding them.
   */
  async admit(userId: string, roomId: string): Promise<void> {
    const facts = await this.store.accessFacts(userId, roomId);
    if (!facts.room) throw AppError.notFound('Room');
    if (!facts.role) throw AppError.notFound('User');
    this.admissible(facts);
  }

  private admissible(facts: AccessFacts): void {
    if (facts.archivedAt) throw archived();
    if (facts.ban) throw sanctioned('You are banned from this room', facts.ban);
  }

  /**
   * May `actor` mute or ban `targetId` in the room? The actor must moderate it ('moderate');
   * nobody sanctions themselves, the room's owner or an admin; only the owner and admins
   * sanction a moderator. The target need not be a member (a ban may come first).
   */
  async sanction(
    actor: { id: string },
    roomId: string,
    targetId: string,
  ): Promise<{ grant: RoomGrant; target: AccessFacts }> {
    const grant = await this.room(actor, roomId, 'moderate');
    if (grant.room.kind !== 'group')
      throw AppError.forbidden('Only members of group rooms can be muted or banned');
    if (targetId === actor.id) throw AppError.forbidden('You cannot moderate yourself');
    const target = await this.store.accessFacts(targetId, roomId);
    this.sanctionable(grant, target);
    return { grant, target };
  }

  /**
   * `sanction` asked again inside the write's transaction, with both parties' rows locked
   * (`RoomStore.lockSanctionParties`): a demotion, removal or disable of the actor, or a
   * promotion of the target (to moderator, or admin), that committed after `sanction` answered
   * is respected. `grant` is the actor's from `sanction` (its room).
   */
  sanctionableNow(
    grant: RoomGrant,
    now: Record<'actor' | 'target', Pick<AccessFacts, 'role' | 'membership'>>,
  ): void {
    if (!now.actor.role) throw AppError.forbidden('Requires a moderator of this room or an admin');
    const actor = moderating({ ...grant, role: now.actor.role, membership: now.actor.membership });
    this.sanctionable(actor, now.target);
  }

  /** The target's part of `sanction`, for `grant` (the actor's) and the target's standing. */
  private sanctionable(grant: RoomGrant, target: Pick<AccessFacts, 'role' | 'membership'>): void {
    if (!target.role) throw AppError.notFound('User');
    if (target.role === 'admin') throw AppError.forbidden('Admins cannot be muted or banned');
    if (target.membership?.role === 'owner')
      throw AppError.forbidden('The room owner cannot be muted or banned');
    const actorIsModerator = grant.role !== 'admin' && grant.membership?.role === 'moderator';
    if (target.membership?.role === 'moderator' && actorIsModerator)
      throw AppError.forbidden('Only the room owner or an admin can moderate a moderator');
  }

  /**
   * Messages: the author edits their own user messages; the author (as a member), the room's
   * moderators ('moderate') or an admin deletes (in an archived room only an admin); members
   * react; whoever reads the room reads its edit history. Edits and reactions are writes: refused while muted or archived.
   */
  async message(user: { id: string }, m: MessageRef, action: MessageAction): Promise<RoomGrant> {
    const own = m.author?.kind === 'user' && m.author.id === user.id;
    switch (action) {
      case 'read':
        return this.room(user, m.roomId, 'read');
      case 'react':
        return this.room(user, m.roomId, 'write');
      case 'edit': {
        const grant = await this.room(user, m.roomId, 'write');
        if (m.role !== 'user' || !own)
          throw AppError.forbidden('Only the author can edit a message');
        return grant;
      }
      case 'delete': {
        const grant = await this.room(user, m.roomId, 'read');
        if (grant.role === 'admin') return grant; // reading a conversation means owning it
        if (grant.archivedAt) throw archived(); // admins may still clean up
        if (!grant.membership)
          throw AppError.forbidden(
            grant.room.kind === 'group' && grant.room.visibility === 'public'
              ? 'Join the room first'
              : 'Not a member of this room',
          );
        if (!own) moderating(grant); // others' messages: moderators (from the same facts)
        return grant;
      }
    }
  }

  /**
   * Stopping a persona reply: the person who asked for it, and admins (not in conversations).
   * Members who see the stream but may not stop it get 403; anyone else must not learn it exists.
   */
  async cancelStream(user: { id: string }, s: StreamRef): Promise<void> {
    const { role, membership } = await this.store.accessFacts(user.id, s.roomId);
    const shared = s.roomKind !== 'conversation';
    if (s.requesterId === user.id && (membership || (shared && role === 'admin'))) return;
    if (shared && role === 'admin') return;
    if (shared && membership) {
      throw AppError.forbidden('Only the person who asked or an admin can cancel this reply');
    }
    throw AppError.notFound('Streaming reply');
  }

  /**
   * A persona's memory of a room (its summary: read, reset). Group rooms: admins ('manage');
   * a conversation: its owner alone (admins get 404 there, as everywhere in conversations).
   */
  async personaMemory(user: { id: string }, roomId: string): Promise<RoomGrant> {
    const facts = await this.store.accessFacts(user.id, roomId);
    return this.decide(facts, facts.room?.kind === 'conversation' ? 'read' : 'manage');
  }

  /**
   * Who holds 'moderate' on the room now (its owner and moderators, and the admins; nobody in
   * conversations): moderation events (reports, reasons of removals) are sent to them.
   */
  moderatorIds(roomId: string): Promise<string[]> {
    return this.store.moderatorIdsOf(roomId);
  }

  /** Of `roomIds`, those the user may still read (live subscriptions are re-checked with it). */
  readableRooms(userId: string, roomIds: string[]): Promise<Set<string>> {
    return this.store.readableOf(userId, roomIds);
  }
}

function archived(): AppError {
  return AppError.forbidden('Room is archived');
}

/** A refusal by a mute or a ban: the reason and the end are in the message and in `details`. */
function sanctioned(what: string, s: Sanction): AppError {
  const details: SanctionDetails = {
    reason: s.reason,
    until: s.until ? s.until.toISOString() : null,
  };
  const end = details.until ? `until ${details.until}` : 'until lifted';
  const because = s.reason ? ` (${s.reason})` : '';
  return new AppError(ErrorCode.FORBIDDEN, `${what}${because} ${end}`, details);
}

/** 'moderate': admins (not in conversations), the room's owner and its moderators. */
function moderating(grant: RoomGrant): RoomGrant {
  const { room, membership, role } = grant;
  if (room.kind === 'conversation') throw AppError.forbidden('Conversations have no moderators');
  if (role === 'admin' || membership?.role === 'owner' || membership?.role === 'moderator')
    return grant;
  throw AppError.forbidden('Requires a moderator of this room or an admin');
}
