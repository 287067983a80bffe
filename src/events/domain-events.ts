import { Injectable } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import type {
  MemberBanned,
  MemberJoined,
  MemberLeft,
  MemberMuted,
  MemberRoleChanged,
  MemberUnbanned,
  MemberUnmuted,
  NotificationDto,
  NotificationsRead,
  RoomArchived,
  PersonaStreamDelta,
  PersonaStreamEnd,
  PersonaStreamStart,
  TypingEvent,
  ReactionUpdated,
  ReadUpdated,
  ReportDto,
  RoomUpdated,
  ThreadUpdated,
} from '../common/wire';
import type { MessageDto } from '../messages/dto/message.dto';
import type { RoomDto } from '../rooms/dto/room.dto';
import type { Role } from '../users/user.entity';

/*
 * Payloads named once, in src/common/wire.ts (plain interfaces the client package compiles too):
 * the domain events below and the socket contract (src/chat/contract.ts) share them, so what a
 * service announces and what a client receives cannot drift.
 */
export type {
  MemberBanned,
  MemberJoined,
  MemberLeft,
  MemberMuted,
  MemberRoleChanged,
  MemberUnbanned,
  MemberUnmuted,
  NotificationDto,
  NotificationsRead,
  RoomArchived,
  PersonaStreamDelta,
  PersonaStreamEnd,
  PersonaStreamStart,
  TypingEvent,
  ReactionUpdated,
  ReadUpdated,
  ReportDto,
  ThreadUpdated,
};

/**
 * Events services publish after their transaction commits. The chat module is the one place
 * that turns them into socket emits; services never import it. Each event has one emitter.
 */
export interface DomainEventMap {
  /** A session (or every session of a user, when sessionId is absent) stopped being valid. */
  'session.revoked': { userId: string; sessionId?: string; reason: string };
  /** A user's global role changed: their live sockets are re-evaluated at once. */
  'user.role.changed': { userId: string; role: Role };
  /** Emitted by MessageWriter alone. */
  'message.created': { message: MessageDto };
  'message.updated': { message: MessageDto };
  /** A thread root's counters after a committed reply batch: MessageWriter.announce alone. */
  'thread.updated': ThreadUpdated;
  /**
   * A tombstone. Removed by moderation: `message` carries the reason, which only `insiders`
   * (its author and the room's moderators and admins) may receive; the room gets it without.
   */
  'message.deleted': { message: MessageDto; insiders?: string[] };
  /** A new report, for the room's moderators and the admins (`to`: their user ids). */
  'report.created': { report: ReportDto; to: string[] };
  /** A report resolved or dismissed, for the same audience. */
  'report.resolved': { report: ReportDto; to: string[] };
  'reaction.updated': ReactionUpdated;
  'member.joined': MemberJoined;
  'member.left': MemberLeft;
  'room.created': { room: RoomDto; memberIds: string[] };
  'room.updated': { room: RoomUpdated };
  /** `public`: a public group room, listed for every user (so everyone is told). */
  'room.deleted': { roomId: string; memberIds: string[]; public: boolean };
  'read.updated': ReadUpdated;
  /**
   * A room's word-filter rules changed (roomId null: the global ones). Not a socket event: the
   * room-settings cache drops what it compiled (on every instance, through Redis).
   */
  'filters.changed': { roomId: string | null };
  /** Moderation (ModerationService): after commit; a ban also takes the user's sockets out. */
  /** `insiders`: who may see the reason (the user, the room's moderators and the admins). */
  'member.muted': MemberMuted & { insiders: string[] };
  'member.unmuted': MemberUnmuted;
  'member.banned': MemberBanned & { insiders: string[] };
  'member.unbanned': MemberUnbanned;
  'member.role.changed': MemberRoleChanged;
  'room.archived': RoomArchived;
  'room.unarchived': RoomArchived;
  /**
   * A notification was written for `userId` (NotificationsService, after its batch committed):
   * to the recipient's sockets, and to push. The DTO carries the room (id, name, kind), the
   * sender, the message id and the start of its text.
   */
  'notification.created': { userId: string; notification: NotificationDto };
  /** Some of the user's notifications were marked read (NotificationsService). */
  'notifications.read': NotificationsRead & { userId: string };
  'persona.stream.start': PersonaStreamStart;
  'persona.stream.delta': PersonaStreamDelta;
  'persona.stream.end': PersonaStreamEnd;
  /** A persona's typing-like state ('thinking', 'writing', off), sent as the `typing` event. */
  'persona.typing': TypingEvent;
}

export type DomainEventName = keyof DomainEventMap;

@Injectable()
export class DomainEvents {
  constructor(private readonly emitter: EventEmitter2) {}

  emit<K extends DomainEventName>(name: K, payload: DomainEventMap[K]): void {
    this.emitter.emit(name, payload);
  }
}
