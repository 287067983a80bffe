import { Injectable, Logger } from '@nestjs/common';
import { AccessPolicy } from '../access/access.policy';
import { OnEvent } from '@nestjs/event-emitter';
import type { DomainEventMap } from '../events/domain-events';
import { withoutReason } from '../messages/message-store';
import { MetricsService } from '../metrics/metrics.service';
import { SocketSessionsService } from './socket-sessions.service';
import type { ServerEventName, ServerEvents } from './contract';
import { type ChatServer, ROOM_PREFIX, roomChannel, sessionChannel, userChannel } from './types';

/**
 * The one place where domain events (emitted by services after commit, whether the change came
 * over REST or a socket) become socket emits. Each broadcast goes out once to Socket.IO rooms
 * (across instances with the Redis adapter), so the payload is serialised once however many
 * members receive it.
 */
@Injectable()
export class ChatBroadcaster {
  private server?: ChatServer;

  private readonly logger = new Logger('Broadcaster');

  constructor(
    private readonly access: AccessPolicy,
    private readonly sessions: SocketSessionsService,
    private readonly metrics: MetricsService,
  ) {}

  attach(server: ChatServer): void {
    this.server = server;
  }

  @OnEvent('message.created')
  messageCreated({ message }: DomainEventMap['message.created']) {
    this.metrics.messagesPersisted.inc({ role: message.role });
    this.send(roomChannel(message.roomId), 'message.created', message);
  }

  @OnEvent('message.updated')
  messageUpdated({ message }: DomainEventMap['message.updated']) {
    this.send(roomChannel(message.roomId), 'message.updated', message);
  }

  /**
   * A removal by moderation carries its reason only to the insiders (author, room moderators,
   * admins), on their user channels; the rest of the room gets the tombstone without it.
   */
  @OnEvent('message.deleted')
  messageDeleted({ message, insiders }: DomainEventMap['message.deleted']) {
    if (message.removalReason === undefined || !insiders) {
      this.send(roomChannel(message.roomId), 'message.deleted', withoutReason(message));
      return;
    }
    const channels = insiders.map(userChannel);
    this.send(roomChannel(message.roomId), 'message.deleted', withoutReason(message), channels);
    if (channels.length) this.send(channels, 'message.deleted', message);
  }

  /** Reports reach the room's moderators and the admins, on their user channels. */
  @OnEvent('report.created')
  reportCreated({ report, to }: DomainEventMap['report.created']) {
    if (to.length) this.send(to.map(userChannel), 'report.created', report);
  }

  @OnEvent('report.resolved')
  reportResolved({ report, to }: DomainEventMap['report.resolved']) {
    if (to.length) this.send(to.map(userChannel), 'report.resolved', report);
  }

  @OnEvent('reaction.updated')
  reactionUpdated(e: DomainEventMap['reaction.updated']) {
    this.send(roomChannel(e.roomId), 'reaction.updated', e);
  }

  @OnEvent('thread.updated')
  threadUpdated(e: DomainEventMap['thread.updated']) {
    this.send(roomChannel(e.roomId), 'thread.updated', e);
  }

  /** The new member's sockets start receiving the room at once. */
  @OnEvent('member.joined')
  memberJoined(e: DomainEventMap['member.joined']) {
    this.subscribe(userChannel(e.user.id), roomChannel(e.roomId));
    this.send(roomChannel(e.roomId), 'member.joined', e);
  }

  /** A member who left or was removed stops receiving the room before anything else is sent. */
  @OnEvent('member.left')
  memberLeft(e: DomainEventMap['member.left']) {
    this.unsubscribe(userChannel(e.userId), roomChannel(e.roomId));
    this.send([roomChannel(e.roomId), userChannel(e.userId)], 'member.left', e);
  }

  /** The reason goes to the insiders only (on their user channels), as for removals. */
  @OnEvent('member.muted')
  memberMuted({ insiders, ...e }: DomainEventMap['member.muted']) {
    const channels = insiders.map(userChannel);
    const { reason: _, ...withoutReason } = e;
    this.send(roomChannel(e.roomId), 'member.muted', withoutReason, channels);
    if (channels.length) this.send(channels, 'member.muted', e);
  }

  @OnEvent('member.unmuted')
  memberUnmuted(e: DomainEventMap['member.unmuted']) {
    this.send(roomChannel(e.roomId), 'member.unmuted', e);
  }

  /**
   * A banned user stops receiving the room at once, on every instance (as for member.left),
   * then the room and the user (all their sockets) are told.
   */
  @OnEvent('member.banned')
  memberBanned({ insiders, ...e }: DomainEventMap['member.banned']) {
    this.unsubscribe(userChannel(e.userId), roomChannel(e.roomId));
    const channels = [...new Set([e.userId, ...insiders])].map(userChannel);
    const { reason: _, ...withoutReason } = e;
    this.send(roomChannel(e.roomId), 'member.banned', withoutReason, channels);
    this.send(channels, 'member.banned', e);
  }

  @OnEvent('member.unbanned')
  memberUnbanned(e: DomainEventMap['member.unbanned']) {
    this.send([roomChannel(e.roomId), userChannel(e.userId)], 'member.unbanned', e);
  }

  @OnEvent('member.role.changed')
  memberRoleChanged(e: DomainEventMap['member.role.changed']) {
    this.send(roomChannel(e.roomId), 'member.role.changed', e);
  }

  @OnEvent('room.archived')
  roomArchived(e: DomainEventMap['room.archived']) {
    this.send(roomChannel(e.roomId), 'room.archived', e);
  }

  @OnEvent('room.unarchived')
  roomUnarchived(e: DomainEventMap['room.unarchived']) {
    this.send(roomChannel(e.roomId), 'room.unarchived', e);
  }

  /** Public rooms are announced to everyone; others only to their members (who are subscribed). */
  @OnEvent('room.created')
  roomCreated({ room, memberIds }: DomainEventMap['room.created']) {
    const members = memberIds.map(userChannel);
    this.subscribe(members, roomChannel(room.id));
    if (room.kind === 'group' && room.visibility === 'public' && this.server) {
      this.metrics.emits.inc({ event: 'room.created' });
      this.server.except(members).emit('room.created', { ...room, joined: false, myRole: null });
    }
    if (members.length) this.send(members, 'room.created', room);
  }

  @OnEvent('room.updated')
  roomUpdated({ room }: DomainEventMap['room.updated']) {
    this.send(roomChannel(room.id), 'room.updated', room);
  }

  /** Members (everyone, for public rooms) are told, then every socket leaves the room. */
  @OnEvent('room.deleted')
  roomDeleted({ roomId, memberIds, public: everyone }: DomainEventMap['room.deleted']) {
    if (everyone && this.server) {
      // Public rooms are in every user's room list (see room.created): everyone drops it.
      this.metrics.emits.inc({ event: 'room.deleted' });
      this.server.emit('room.deleted', { roomId });
    } else {
      this.send([roomChannel(roomId), ...memberIds.map(userChannel)], 'room.deleted', { roomId });
    }
    this.unsubscribe(roomChannel(roomId), roomChannel(roomId));
  }

  /** A notification reaches its recipient's sockets only (their user channel). */
  @OnEvent('notification.created')
  notificationCreated({ userId, notification }: DomainEventMap['notification.created']) {
    this.send(userChannel(userId), 'notification.created', notification);
  }

  /** Notifications marked read sync across the user's own tabs and devices. */
  @OnEvent('notifications.read')
  notificationsRead({ userId, ids }: DomainEventMap['notifications.read']) {
    this.send(userChannel(userId), 'notifications.read', { ids });
  }

  /** Read markers sync across the user's own tabs and devices. */
  @OnEvent('read.updated')
  readUpdated(e: DomainEventMap['read.updated']) {
    this.send(userChannel(e.userId), 'read.updated', e);
  }

  /**
   * A demoted admin keeps no admin-only subscription: every live socket of the user (on any
   * instance) is re-evaluated against the access policy and leaves the rooms it may no longer read.
   */
  @OnEvent('user.role.changed')
  async roleChanged({ userId }: DomainEventMap['user.role.changed']): Promise<void> {
    if (!this.server) return;
    try {
      // This instance's sockets at once (no round trip), then every instance's.
      await this.dropUnreadable(userId, true);
      await this.dropUnreadable(userId, false);
    } catch (err) {
      // Could not tell which subscriptions to drop (an instance did not answer): drop them
      // all. The client reconnects and subscribes to what it may read now.
      this.sessions.revoke(userChannel(userId), 'access_changed');
      const why = err instanceof Error ? (err.stack ?? err.message) : String(err);
      this.logger.error(
        `re-evaluating the sockets of ${userId} after a role change failed: ${why}`,
      );
    }
  }

  private async dropUnreadable(userId: string, local: boolean): Promise<void> {
    const server = local ? this.server!.local : this.server!;
    const sockets = await server.in(userChannel(userId)).fetchSockets();
    const subscribed = new Set(
      sockets.flatMap((s) => [...s.rooms].filter((r) => r.startsWith(ROOM_PREFIX))),
    );
    const ids = [...subscribed].map((r) => r.slice(ROOM_PREFIX.length));
    const readable = await this.access.readableRooms(userId, ids);
    const revoked = ids.filter((id) => !readable.has(id)).map(roomChannel);
    if (!revoked.length) return;
    if (local) this.server!.local.in(userChannel(userId)).socketsLeave(revoked);
    else this.unsubscribe(userChannel(userId), revoked);
  }

  @OnEvent('session.revoked')
  sessionRevoked({ userId, sessionId, reason }: DomainEventMap['session.revoked']) {
    if (this.server)
      this.sessions.revoke(sessionId ? sessionChannel(sessionId) : userChannel(userId), reason);
  }

  @OnEvent('persona.stream.start')
  personaStart(e: DomainEventMap['persona.stream.start']) {
    this.send(roomChannel(e.roomId), 'persona.stream.start', e);
  }

  @OnEvent('persona.stream.delta')
  personaDelta(e: DomainEventMap['persona.stream.delta']) {
    this.send(roomChannel(e.roomId), 'persona.stream.delta', e);
  }

  @OnEvent('persona.stream.end')
  personaEnd(e: DomainEventMap['persona.stream.end']) {
    this.send(roomChannel(e.roomId), 'persona.stream.end', e);
  }

  /** A persona's 'thinking'/'writing' state reaches the room as a typing indicator. */
  @OnEvent('persona.typing')
  personaTyping(e: DomainEventMap['persona.typing']) {
    this.send(roomChannel(e.roomId), 'typing', e);
  }

  /**
   * Subscribes the sockets in `who` to `room`: this instance's at once, then the others'
   * (with the Redis adapter a join travels through Redis; an emit that follows, such as the
   * "joined" notice, reaches this instance's sockets immediately, so they must be in already;
   * other instances receive the join request before the emit, in publish order).
   */
  private subscribe(who: string | string[], room: string | string[]): void {
    if (!this.server) return;
    this.server.local.in(who).socketsJoin(room);
    this.server.in(who).socketsJoin(room);
  }

  /** As `subscribe`: this instance's sockets stop receiving the room before anything else. */
  private unsubscribe(who: string | string[], room: string | string[]): void {
    if (!this.server) return;
    this.server.local.in(who).socketsLeave(room);
    this.server.in(who).socketsLeave(room);
  }

  /** Every broadcast goes through here, so each is counted once; `except` skips those channels. */
  private send<K extends ServerEventName>(
    to: string | string[],
    event: K,
    payload: ServerEvents[K],
    except: string[] = [],
  ): void {
    if (!this.server) return;
    this.metrics.emits.inc({ event });
    const target = except.length ? this.server.to(to).except(except) : this.server.to(to);
    (target.emit as (e: K, p: ServerEvents[K]) => boolean)(event, payload);
  }
}
