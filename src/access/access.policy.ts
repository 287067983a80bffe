import { Injectable } from '@nestjs/common';
import { AppError } from '../common/errors';
import type { Membership, Room } from '../rooms/room.entity';
import { RoomStore } from '../rooms/room.store';
import type { Role } from '../users/user.entity';

/**
 * What a user may do with a room:
 * - view: see the room itself (members; anyone for public group rooms; admins);
 * - read: history, changes, members, search, edit history (members; admins);
 * - write: send, react, mark read, edit own messages (members only: admins join first);
 * - invite: add members (admins, and the room's owners);
 * - manage: change or delete the room, remove members, attach personas (admins; in
 *   conversations only their owner, who alone may view them).
 */
export type RoomAction = 'view' | 'read' | 'write' | 'invite' | 'manage';

/** What a user may do with a message (always within what the room allows). */
export type MessageAction = 'edit' | 'delete' | 'react' | 'read';

export interface RoomGrant {
  room: Room;
  membership: Pick<Membership, 'role'> | null;
  /** The user's global role now (not the one in their token or socket). */
  role: Role;
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
    const { role, room, membership } = await this.store.accessFacts(user.id, roomId);
    if (!room || !role) throw AppError.notFound('Room');
    const isAdmin = role === 'admin' && room.kind !== 'conversation';
    const isPublic = room.kind === 'group' && room.visibility === 'public';
    if (!membership && !isAdmin && !isPublic) throw AppError.notFound('Room');
    const grant = { room, membership, role };
    switch (action) {
      case 'view':
        return grant;
      case 'read':
        if (membership || isAdmin) return grant;
        throw AppError.forbidden('Join the room first');
      case 'write':
        if (membership) return grant;
        throw AppError.forbidden(isPublic ? 'Join the room first' : 'Not a member of this room');
      case 'invite':
        if (isAdmin || membership?.role === 'owner') return grant;
        throw AppError.forbidden('Only admins and room owners can add members');
      case 'manage':
        // Admins manage every room they can see, their own conversations included.
        if (role === 'admin') return grant;
        throw AppError.forbidden('Requires role: admin');
    }
  }

  /**
   * Messages: the author edits their own user messages; the author (as a member) or an admin
   * deletes; members react; whoever reads the room reads its edit history.
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
        if (!grant.membership)
          throw AppError.forbidden(
            grant.room.kind === 'group' && grant.room.visibility === 'public'
              ? 'Join the room first'
              : 'Not a member of this room',
          );
        if (!own) throw AppError.forbidden('Only the author or an admin can delete a message');
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

  /** Of `roomIds`, those the user may still read (live subscriptions are re-checked with it). */
  readableRooms(userId: string, roomIds: string[]): Promise<Set<string>> {
    return this.store.readableOf(userId, roomIds);
  }
}
