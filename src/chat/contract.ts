/**
 * The Socket.IO contract, typed once: commands (client → server, each with an ack), their
 * payloads and results, and server events. The gateway, the tests, the bench harness, the
 * typed client and the AsyncAPI document all derive from this file.
 *
 * It imports only the plain shapes of src/common/wire.ts (never a decorated DTO class), so the
 * client package (client/) compiles it as it is and ships it in its type declarations.
 */
import type {
  AuthRefreshPayload,
  ErrorCode,
  HistoryFetchPayload,
  HistoryPageDto,
  MemberBanned,
  MemberDto,
  MemberJoined,
  MemberLeft,
  MemberMuted,
  MemberRoleChanged,
  MemberUnbanned,
  MemberUnmuted,
  MessageDeletePayload,
  MessageDto,
  MessageEditPayload,
  MessageReportPayload,
  MessageSendPayload,
  NotificationDto,
  NotificationReadPayload,
  NotificationsRead,
  PersonaCancelPayload,
  PersonaStreamDelta,
  PersonaStreamEnd,
  PersonaStreamStart,
  PersonaStreamSnapshot,
  TypingEvent,
  ReactionPayload,
  ReactionSummaryDto,
  ReactionUpdated,
  ReadMarkPayload,
  ReadStateDto,
  ReadUpdated,
  ReportDto,
  RoomArchived,
  RoomDto,
  RoomJoinPayload,
  RoomPayload,
  RoomUpdated,
  ThreadFetchPayload,
  ThreadPageDto,
  ThreadUpdated,
} from '../common/wire.js';

export type AckError = {
  code: ErrorCode;
  message: string;
  retryAfterMs?: number;
  details?: unknown;
};
export type Ack<T> = { ok: true; data: T } | { ok: false; error: AckError };

export interface RoomJoinResult {
  room: RoomDto;
  members: MemberDto[];
  /** Ids of members with at least one connected socket. */
  online: string[];
  /** Without `since`: the latest page (chronological). With `since`: every change after it, by version. */
  messages: MessageDto[];
  hasMore: boolean;
  /** The change cursor to store and pass as `since` next time (the highest version seen). */
  cursor: number;
  /** Persona replies streaming in the room now (with or without `since`). */
  streams: PersonaStreamSnapshot[];
}

export interface ReactionsResult {
  messageId: number;
  version: number;
  reactions: ReactionSummaryDto[];
}

/** Every command, its payload and its ack data. */
export interface Commands {
  'room.join': [RoomJoinPayload, RoomJoinResult];
  'room.leave': [RoomPayload, null];
  'message.send': [MessageSendPayload, MessageDto];
  'message.edit': [MessageEditPayload, MessageDto];
  'message.delete': [MessageDeletePayload, null];
  'message.report': [MessageReportPayload, ReportDto];
  'reaction.add': [ReactionPayload, ReactionsResult];
  'reaction.remove': [ReactionPayload, ReactionsResult];
  'typing.start': [RoomPayload, null];
  'typing.stop': [RoomPayload, null];
  'read.mark': [ReadMarkPayload, ReadStateDto];
  'notification.read': [NotificationReadPayload, { marked: number }];
  'history.fetch': [HistoryFetchPayload, HistoryPageDto];
  'thread.fetch': [ThreadFetchPayload, ThreadPageDto];
  'persona.cancel': [PersonaCancelPayload, null];
  'auth.refresh': [AuthRefreshPayload, { expiresAt: number }];
}
export type CommandName = keyof Commands;

export type {
  PersonaStreamDelta,
  PersonaStreamEnd,
  PersonaStreamSnapshot,
  PersonaStreamStart,
  TypingEvent,
};

/** Every server event and its payload. */
export interface ServerEvents {
  'message.created': MessageDto;
  'message.updated': MessageDto;
  'message.deleted': MessageDto;
  'reaction.updated': ReactionUpdated;
  'thread.updated': ThreadUpdated;
  typing: TypingEvent;
  'presence.changed': { userId: string; online: boolean };
  'member.joined': MemberJoined;
  'member.left': MemberLeft;
  'read.updated': ReadUpdated;
  'member.muted': MemberMuted;
  'member.unmuted': MemberUnmuted;
  'member.banned': MemberBanned;
  'member.unbanned': MemberUnbanned;
  'member.role.changed': MemberRoleChanged;
  'room.archived': RoomArchived;
  'room.unarchived': RoomArchived;
  'room.created': RoomDto;
  'room.updated': RoomUpdated;
  'room.deleted': { roomId: string };
  'persona.stream.start': PersonaStreamStart;
  'persona.stream.delta': PersonaStreamDelta;
  'persona.stream.end': PersonaStreamEnd;
  'session.revoked': { reason: string };
  /** To the room's moderators and the admins: a member reported a message. */
  'report.created': ReportDto;
  /** To the room's moderators and the admins: a report was resolved or dismissed. */
  'report.resolved': ReportDto;
  /** To the recipient's sockets: a new notification (mention, direct message, thread reply…). */
  'notification.created': NotificationDto;
  /** To your sockets: these of your notifications were marked read (on any device). */
  'notifications.read': NotificationsRead;
  /** Sent before a graceful shutdown: reconnect (to another instance) after `retryAfterMs`. */
  'server.shutdown': { retryAfterMs: number };
}
export type ServerEventName = keyof ServerEvents;

/** Socket.IO's typed maps, for `Server<…>` and `Socket<…>` on both sides. */
export type ClientToServer = {
  [K in CommandName]: (payload: Commands[K][0], ack?: (res: Ack<Commands[K][1]>) => void) => void;
};
export type ServerToClient = { [K in ServerEventName]: (payload: ServerEvents[K]) => void };

/** Runtime lists (AsyncAPI generation, tests): kept complete by the `satisfies` checks. */
export const COMMAND_NAMES = Object.keys({
  'room.join': 1,
  'room.leave': 1,
  'message.send': 1,
  'message.edit': 1,
  'message.delete': 1,
  'message.report': 1,
  'reaction.add': 1,
  'reaction.remove': 1,
  'typing.start': 1,
  'typing.stop': 1,
  'read.mark': 1,
  'notification.read': 1,
  'history.fetch': 1,
  'thread.fetch': 1,
  'persona.cancel': 1,
  'auth.refresh': 1,
} satisfies Record<CommandName, 1>) as CommandName[];

export const SERVER_EVENT_NAMES = Object.keys({
  'message.created': 1,
  'message.updated': 1,
  'message.deleted': 1,
  'reaction.updated': 1,
  'thread.updated': 1,
  typing: 1,
  'presence.changed': 1,
  'member.joined': 1,
  'member.left': 1,
  'read.updated': 1,
  'member.muted': 1,
  'member.unmuted': 1,
  'member.banned': 1,
  'member.unbanned': 1,
  'member.role.changed': 1,
  'room.archived': 1,
  'room.unarchived': 1,
  'room.created': 1,
  'room.updated': 1,
  'room.deleted': 1,
  'persona.stream.start': 1,
  'persona.stream.delta': 1,
  'persona.stream.end': 1,
  'session.revoked': 1,
  'report.created': 1,
  'report.resolved': 1,
  'notification.created': 1,
  'notifications.read': 1,
  'server.shutdown': 1,
} satisfies Record<ServerEventName, 1>) as ServerEventName[];
