/**
 * The shapes on the wire, as plain TypeScript: what the socket contract (src/chat/contract.ts)
 * and the domain events carry, and what the typed client (client/) publishes to other projects.
 *
 * This file imports nothing, contract.ts imports only this file, and neither holds a decorator,
 * so the client package compiles both as they are. The server's DTO classes (class-validator, Swagger) `implements`
 * these interfaces and are checked to match them exactly (`SameShape` below), so the payloads
 * are still named once.
 */

/**
 * The one error vocabulary (re-exported by src/common/errors.ts): clients switch on `code`,
 * never on `message`. The only runtime code here, so the client package exports it too.
 */
export enum ErrorCode {
  UNAUTHORIZED = 'UNAUTHORIZED',
  TOKEN_EXPIRED = 'TOKEN_EXPIRED',
  FORBIDDEN = 'FORBIDDEN',
  NOT_FOUND = 'NOT_FOUND',
  VALIDATION_FAILED = 'VALIDATION_FAILED',
  CONFLICT = 'CONFLICT',
  RATE_LIMITED = 'RATE_LIMITED',
  PAYLOAD_TOO_LARGE = 'PAYLOAD_TOO_LARGE',
  /** A word filter blocked the text (send or edit): `details.pattern` names the rule matched. */
  CONTENT_BLOCKED = 'CONTENT_BLOCKED',
  UNAVAILABLE = 'UNAVAILABLE',
  INTERNAL = 'INTERNAL',
  /**
   * A daily token budget of persona replies is used up (user, room, persona or global); the
   * refusal is a room notice naming it (docs/personas.md "Usage and budgets").
   */
  BUDGET_EXHAUSTED = 'BUDGET_EXHAUSTED',
}
/** The codes as plain strings (`ParlorError.code` in the client). */
export type ErrorCodeName = `${ErrorCode}`;

export type MessageRole = 'user' | 'assistant' | 'system';
/**
 * How a persona reply ended: 'stop' and 'length' come from the model; 'cancelled', 'timeout'
 * and 'error' mark a reply cut short, whose text is what the model produced until then;
 * 'interrupted' a reply whose server instance died mid-stream (ended by another instance).
 */
export type FinishReason = 'stop' | 'length' | 'cancelled' | 'timeout' | 'error' | 'interrupted';
export type RoomKind = 'group' | 'direct' | 'conversation';
export type Visibility = 'public' | 'private';
/** A room's owner and moderators moderate it (mute, ban, remove messages, reports, slow mode). */
export type MemberRole = 'owner' | 'moderator' | 'member';

/** What the audit log records (GET /api/v1/admin/audit filters on it). */
export type AuditAction =
  | 'room.create'
  | 'room.update'
  | 'room.delete'
  | 'room.archive'
  | 'room.unarchive'
  | 'room.slow_mode'
  | 'member.add'
  | 'member.remove'
  | 'member.role'
  | 'member.mute'
  | 'member.unmute'
  | 'member.ban'
  | 'member.unban'
  | 'user.role'
  | 'user.disable'
  | 'user.enable'
  | 'user.suspend'
  | 'user.unsuspend'
  | 'message.remove'
  | 'report.resolve'
  | 'report.dismiss'
  | 'filter.add'
  | 'filter.remove'
  | 'persona.create'
  | 'persona.update'
  | 'persona.delete'
  | 'persona.attach'
  | 'persona.detach'
  | 'persona.summary.reset'
  | 'room.persona_policy';
export type AuditTargetType = 'user' | 'room' | 'message' | 'persona' | 'report' | 'filter';

// --- messages ---------------------------------------------------------------------------

export interface ReactionSummaryDto {
  emoji: string;
  count: number;
  /** Who reacted, oldest first. */
  userIds: string[];
  /** Whether the caller reacted (REST and acks; absent in broadcasts). */
  me?: boolean;
}

export interface MessageAuthorDto {
  id: string;
  kind: 'user' | 'persona';
  /** For users. */
  username?: string;
  /** For personas. */
  handle?: string;
  displayName?: string | null;
}

/** A member a message mentions by name (`@username`), as resolved when it was sent or edited. */
export interface MentionDto {
  userId: string;
  username: string;
}

/** A file a message carries (POST /rooms/:id/attachments, then `attachmentIds` in a send). */
export interface AttachmentDto {
  id: string;
  /** The uploader's file name (shown, and offered when saving; never a storage path). */
  name: string;
  /** Bytes. */
  size: number;
  /** Sniffed from the bytes (`application/octet-stream` when nothing was recognised). */
  contentType: string;
  /** Images only: pixels (null otherwise). */
  width: number | null;
  height: number | null;
  /** Images only: the path of a WebP thumbnail (GET, same access as the file); null otherwise. */
  thumbnail: string | null;
}

export interface MessageDto {
  /** History cursor (one sequence for all rooms). */
  id: number;
  /** Change cursor: bumped on every edit, delete and reaction. */
  version: number;
  roomId: string;
  /** null for system messages. */
  author: MessageAuthorDto | null;
  role: MessageRole;
  /** Absent on tombstones. */
  content?: string;
  replyToId: number | null;
  clientMsgId: string | null;
  reactions: ReactionSummaryDto[];
  /** A Date on the server; an ISO 8601 string once it crossed the wire as JSON. */
  createdAt: Date;
  editedAt: Date | null;
  /** Set on tombstones (deleted messages). */
  deletedAt: Date | null;
  /** Persona replies only: how generation ended. */
  finishReason?: FinishReason;
  /** Persona replies only: the tokens their generation cost. */
  usage?: MessageUsage;
  /** Tombstones only: true when someone other than the author removed it (moderation). */
  removedByModeration?: boolean;
  /**
   * Why a moderator removed it: only for its author and the room's moderators and admins
   * (never in room broadcasts).
   */
  removalReason?: string;
  /** Members mentioned by name, parsed by the server at send and edit (in order, each once). */
  mentions: MentionDto[];
  /** Present (true) when the text says `@here`: the members online at that moment are mentioned. */
  mentionsHere?: boolean;
  /** Present (true) when `@room` was said by someone who may (moderators): every member. */
  mentionsRoom?: boolean;
  /** A reply's thread (the root of its parent's thread; threads are flat); null otherwise. */
  threadRootId: number | null;
  /** Thread roots only (absent until the first reply): replies in the thread. */
  replyCount?: number;
  /** Thread roots only: when the latest reply was written. */
  lastReplyAt?: Date;
  /** Thread roots only: the last 5 distinct repliers' user ids, most recent first. */
  threadParticipants?: string[];
  /** Files sent with the message, in the order given (empty on tombstones: their files are deleted). */
  attachments: AttachmentDto[];
}

/**
 * The tokens of a persona reply's generation: the model server's `usage` when it sent one, else
 * estimated (one token per 4 characters, rounded up; docs/personas.md "Usage and budgets").
 */
export interface MessageUsage {
  promptTokens: number;
  completionTokens: number;
  /** True when the counts are the estimate. */
  estimated: boolean;
}

/** A thread: its root and a page of replies (GET /messages/:id/thread, `thread.fetch`). */
export interface ThreadPageDto {
  root: MessageDto;
  /** Replies, oldest first. */
  items: MessageDto[];
  /** Pass as `after` for the page of later replies; null when none follow. */
  nextCursor: number | null;
  /** Pass as `before` for the page of earlier replies; null when none precede. */
  prevCursor: number | null;
  /** Whether the caller follows the thread. */
  following: boolean;
}

/** A thread root's counters changed (a reply was written): to the room. */
export interface ThreadUpdated {
  roomId: string;
  rootId: number;
  /** The root's change cursor after the update (later updates carry larger versions). */
  version: number;
  replyCount: number;
  /** ISO 8601. */
  lastReplyAt: string;
  /** The last 5 distinct repliers' user ids, most recent first. */
  participants: string[];
}

export interface HistoryPageDto {
  /** Chronological (oldest first), tombstones included. */
  items: MessageDto[];
  /** More in the direction asked (older for latest/before, newer for after). */
  hasMore: boolean;
  hasMoreBefore: boolean;
  hasMoreAfter: boolean;
}

// --- reports ----------------------------------------------------------------------------

export type ReportCategory = 'spam' | 'abuse' | 'harassment' | 'illegal' | 'other';
export type ReportStatus = 'open' | 'resolved' | 'dismissed';
/** What resolving a report did to the message or its author. */
export type ReportAction = 'delete' | 'mute' | 'ban' | 'none';

/** A member's report of a message, as the room's moderators and the admins see it. */
export interface ReportDto {
  id: string;
  messageId: number;
  roomId: string;
  reporterId: string;
  category: ReportCategory;
  text: string;
  status: ReportStatus;
  /** Set once resolved. */
  action: ReportAction | null;
  /** The resolution's reason, or the dismissal's note. */
  resolutionNote: string;
  resolvedBy: string | null;
  resolvedAt: Date | null;
  createdAt: Date;
  /** The reported message as it is now (a tombstone once removed); null if it is gone. */
  message: MessageDto | null;
}

// --- rooms ------------------------------------------------------------------------------

export interface RoomDto {
  id: string;
  name: string;
  description: string;
  theme: string;
  kind: RoomKind;
  visibility: Visibility;
  createdBy: string | null;
  createdAt: Date;
  updatedAt: Date;
  /** Slow mode: the least time between two messages of one member, in ms (0: off). */
  slowModeMs: number;
  memberCount: number;
  /** Whether the caller is a member. */
  joined: boolean;
  myRole: MemberRole | null;
  /** Set while the room is archived (read-only for everyone); null otherwise. */
  archivedAt: Date | null;
}

/**
 * `room.updated`: the room as every member sees it alike. It goes to the room's channel, so it
 * carries none of the changer's own view (`joined`, `myRole`): a receiver keeps its own.
 */
export type RoomUpdated = Omit<RoomDto, 'joined' | 'myRole'>;

export interface MemberDto {
  userId: string;
  username: string;
  displayName: string | null;
  role: MemberRole;
  joinedAt: Date;
  /** Whether the member is muted in this room now (they read, but cannot write). */
  muted: boolean;
  /** When the mute ends (ISO 8601); null when not muted or muted until lifted. */
  mutedUntil: string | null;
  /**
   * Why the member is muted ('' when no reason was given), shown to the muted member and to
   * those who may moderate the room; null for everyone else, and when not muted.
   */
  muteReason: string | null;
}

// --- notifications ----------------------------------------------------------------------

/**
 * A member's notification level in a room: `default` (= `all` in direct rooms and
 * conversations, `mentions` elsewhere), `all` (every message), `mentions` (mentions, direct
 * messages, replies in followed threads), `none` (nothing, mentions included).
 */
export type NotifyLevel = 'default' | 'all' | 'mentions' | 'none';
/** Why one was notified, by precedence: mention > direct > thread > message. */
export type NotificationKind = 'mention' | 'direct' | 'thread' | 'message';

export interface NotificationDto {
  /** Keyset cursor (newest first). */
  id: number;
  kind: NotificationKind;
  roomId: string;
  /** The room's name now (for direct rooms: "alice, bob"). */
  roomName: string;
  roomKind: RoomKind;
  messageId: number;
  /** Who wrote the message (a user, or a persona); null when that account is gone. */
  actor: MessageAuthorDto | null;
  /** The start of the message's text; absent once the message is deleted. */
  excerpt?: string;
  createdAt: Date;
  readAt: Date | null;
}

/** notifications.read: these of your notifications were marked read (on any of your devices). */
export interface NotificationsRead {
  ids: number[];
}

export interface ReadStateDto {
  roomId: string;
  /** Never moves backwards. */
  lastReadMessageId: number;
  unreadCount: number;
  /** Messages after the marker that mention the caller (as `unreadMentions` of GET /rooms). */
  unreadMentions: number;
}

// --- socket command payloads ------------------------------------------------------------

export interface RoomPayload {
  roomId: string;
}
export interface RoomJoinPayload extends RoomPayload {
  /** The last change version the client saw; omitted → the latest page. */
  since?: number;
}
export interface MessageSendPayload extends RoomPayload {
  /** Chosen by the client (e.g. a UUID); a retry with the same id returns the first message. */
  clientMsgId: string;
  /** May be empty when `attachmentIds` are given. */
  content: string;
  replyToId?: number;
  /** Uploads of the sender to this room, not yet sent (at most ATTACHMENTS_PER_MESSAGE). */
  attachmentIds?: string[];
}
export interface MessageEditPayload {
  messageId: number;
  content: string;
}
export interface MessageDeletePayload {
  messageId: number;
  /** Why (moderators removing someone else's message); shown to the author and moderators. */
  reason?: string;
}
export interface MessageReportPayload {
  messageId: number;
  category: ReportCategory;
  text?: string;
}
export interface ReactionPayload {
  messageId: number;
  /** An emoji or a :shortcode:. */
  emoji: string;
}
export interface ReadMarkPayload extends RoomPayload {
  messageId: number;
}
/** notification.read: one notification (`id`), one room's (`roomId`), or all (neither). */
export interface NotificationReadPayload {
  id?: number;
  roomId?: string;
}
export interface HistoryFetchPayload extends RoomPayload {
  before?: number;
  after?: number;
  limit?: number;
}
export interface ThreadFetchPayload {
  /** The thread's root, or any reply of it. */
  messageId: number;
  /** Replies with id > after (the first page when no cursor is given). */
  after?: number;
  /** The latest replies with id < before. */
  before?: number;
  /** The latest replies (the thread's end). */
  latest?: boolean;
  limit?: number;
}
export interface PersonaCancelPayload {
  messageId: string;
}
export interface AuthRefreshPayload {
  accessToken: string;
}

// --- event payloads (domain events and socket events) ----------------------------------

export interface ReactionUpdated {
  roomId: string;
  messageId: number;
  version: number;
  reactions: ReactionSummaryDto[];
  userId: string;
  emoji: string;
  added: boolean;
}
export interface MemberJoined {
  roomId: string;
  user: { id: string; username: string; displayName: string | null };
}
export interface MemberLeft {
  roomId: string;
  userId: string;
  reason: 'left' | 'removed';
}
/**
 * Moderation events. `until` is an ISO 8601 string, or null for "until lifted"; `by` is the
 * moderator or admin who acted. `reason` reaches only the sanctioned user and those who may
 * moderate the room (as `muteReason` in the member list); the rest of the room gets the event
 * without it.
 */
export interface MemberMuted {
  roomId: string;
  userId: string;
  until: string | null;
  reason?: string;
  by: string;
}
export interface MemberUnmuted {
  roomId: string;
  userId: string;
  by: string;
}
/**
 * Sent to the room and to the banned user; their sockets leave the room first. `reason`: as
 * for MemberMuted.
 */
export interface MemberBanned {
  roomId: string;
  userId: string;
  until: string | null;
  reason?: string;
  by: string;
}
export interface MemberUnbanned {
  roomId: string;
  userId: string;
  by: string;
}
export interface MemberRoleChanged {
  roomId: string;
  userId: string;
  role: MemberRole;
  by: string;
}
/** room.archived (archivedAt set) and room.unarchived (archivedAt null). */
export interface RoomArchived {
  roomId: string;
  archivedAt: string | null;
  by: string;
}
/** `details` of a FORBIDDEN refusal caused by a mute or a ban. */
export interface SanctionDetails {
  reason: string;
  until: string | null;
}
export interface ReadUpdated {
  roomId: string;
  userId: string;
  lastReadMessageId: number;
}
export interface PersonaStreamStart {
  /** Id of this stream; the persisted message gets its own id (see persona.stream.end). */
  messageId: string;
  roomId: string;
  personaId: string;
  /** The user message that triggered the reply. */
  replyToId: number | null;
}
export interface PersonaStreamDelta {
  messageId: string;
  roomId: string;
  /** 0, 1, 2, … per stream: apply in order. */
  seq: number;
  delta: string;
}
/**
 * A persona reply in progress, as room.join gives it (with or without `since`): the text so far
 * and the `seq` of the next delta. Apply the deltas with `seq >= nextSeq` that follow, in order;
 * those below are already in `text` (the join raced them). persona.stream.end ends it.
 */
export interface PersonaStreamSnapshot {
  messageId: string;
  roomId: string;
  personaId: string;
  replyToId: number | null;
  text: string;
  nextSeq: number;
}
/**
 * The `typing` event. For people: `typing` on or off. For personas (`persona: true`, `userId` is
 * the persona's id and `username` its handle): `state` 'thinking' before the first token,
 * 'writing' while the reply streams, then `typing: false` when it ends.
 */
export interface TypingEvent {
  roomId: string;
  userId: string;
  username: string;
  typing: boolean;
  persona?: true;
  state?: 'thinking' | 'writing';
}
export interface PersonaStreamEnd {
  messageId: string;
  roomId: string;
  finishReason: FinishReason;
  /** The persisted message (also broadcast as message.created); null when nothing was kept. */
  message: MessageDto | null;
}

/**
 * Compile-time proof that a server class and its wire shape have the same fields:
 * `const _x: SameShape<MessageDto, Wire.MessageDto> = true` fails to compile otherwise.
 */
export type SameShape<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
