import { Injectable } from '@nestjs/common';
import { AccessPolicy } from '../access/access.policy';
import { AppError, ErrorCode } from '../common/errors';
import type { MessageDto } from '../messages/dto/message.dto';
import { RateLimitPolicy } from '../limits/rate-limit.policy';
import { MessagesService } from '../messages/messages.service';
import { PersonaStreams } from '../personas/persona-streams';
import { RoomsService } from '../rooms/rooms.service';
import type { RoomJoinResult } from './contract';
import type { MessageSendPayload, RoomJoinPayload } from './dto';
import { PresenceService } from './presence.service';
import { type ChatSocket, roomChannel } from './types';

/** Catch-up page size for room.join with `since` (the client repeats while hasMore). */
const CATCH_UP_PAGE = 100;
const LATEST_PAGE = 50;
const MEMBERS_IN_JOIN = 500;

/**
 * Room commands that need more than one service call on the socket: join (membership,
 * subscription, first page), leave, send. Sessions live in SocketSessionsService, typing in
 * TypingService, limits in CommandTracker/RateLimitPolicy. No SQL here.
 */
@Injectable()
export class ChatService {
  constructor(
    private readonly rooms: RoomsService,
    private readonly access: AccessPolicy,
    private readonly messages: MessagesService,
    private readonly presence: PresenceService,
    private readonly rateLimits: RateLimitPolicy,
    private readonly streams: PersonaStreams,
  ) {}

  /**
   * Open a room on this socket: joins the membership of a public room if needed (admins open
   * any room without joining it: they watch it as staff, and join over REST to take part), subscribes,
   * then reads (subscribe first, so nothing committed in between is missed; clients de-dupe by id).
   * Opening a room one is already in writes nothing and is not rate-limited (a reconnecting
   * client reopens all its rooms); joining the membership counts in the `rooms` bucket.
   */
  async join(socket: ChatSocket, payload: RoomJoinPayload): Promise<RoomJoinResult> {
    const channel = roomChannel(payload.roomId);
    const subscribed = socket.rooms.has(channel);
    try {
      return await this.open(socket, payload);
    } catch (err) {
      // Access can end between the check and the subscription (a demotion, a removal, a ban):
      // whatever failed after subscribing, the socket must not keep receiving the room. A
      // refusal by the policy (from current state) also ends a subscription the socket held
      // before: the ban's or removal's own unsubscribe may have landed between this call's
      // first check and its subscription, and been undone by it.
      if (!subscribed || refused(err)) await socket.leave(channel);
      throw err;
    }
  }

  private async open(
    socket: ChatSocket,
    { roomId, since }: RoomJoinPayload,
  ): Promise<RoomJoinResult> {
    const { user } = socket.data;
    const { membership, role } = await this.access.room(user, roomId, 'view');
    if (!membership && role !== 'admin') {
      await this.rateLimits.check('rooms', user.id);
      await this.rooms.join(user, roomId);
    }
    await socket.join(roomChannel(roomId));
    // Checked again once subscribed: a role or membership change that landed in between has
    // already re-evaluated this user's sockets, and must not be undone by this subscription.
    await this.access.room(user, roomId, 'read');
    const [roomDto, members] = await Promise.all([
      this.rooms.load(roomId, user.id),
      this.rooms.members(user, roomId, { limit: MEMBERS_IN_JOIN }),
    ]);
    const online = await this.presence.onlineAmong(members.items.map((m) => m.userId));
    // Read after subscribing, like the messages: a delta is either in this text or comes after.
    const streams = await this.streams.inRoom(roomId);
    if (since !== undefined) {
      const page = await this.messages.changes(user, roomId, { since, limit: CATCH_UP_PAGE });
      return {
        room: roomDto,
        members: members.items,
        online,
        messages: page.items,
        hasMore: page.hasMore,
        cursor: page.cursor,
        streams,
      };
    }
    const page = await this.messages.history(user, roomId, { limit: LATEST_PAGE });
    return {
      room: roomDto,
      members: members.items,
      online,
      messages: page.items,
      hasMore: page.hasMoreBefore,
      cursor: Math.max(0, ...page.items.map((m) => m.version)),
      streams,
    };
  }

  async leave(socket: ChatSocket, roomId: string): Promise<null> {
    await this.rooms.leave(socket.data.user, roomId);
    await socket.leave(roomChannel(roomId));
    return null;
  }

  /** Rate limits are applied before this runs (the `send` bucket, shared with REST). */
  async send(socket: ChatSocket, dto: MessageSendPayload): Promise<MessageDto> {
    const { roomId, ...message } = dto;
    return (await this.messages.send(socket.data.user, roomId, message)).message;
  }
}

/** The access policy said no (404 for rooms one may not view, 403 otherwise). */
function refused(err: unknown): boolean {
  return (
    err instanceof AppError &&
    (err.code === ErrorCode.FORBIDDEN || err.code === ErrorCode.NOT_FOUND)
  );
}
