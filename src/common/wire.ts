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
  UNAVAILABLE = 'UNAVAILABLE',
  INTERNAL = 'INTERNAL',
}
/** The codes as plain strings (`ParlorError.code` in the client). */
export type ErrorCodeName = `${ErrorCode}`;

export type MessageRole = 'user' | 'assistant' | 'system';
/**
 * How a persona reply ended: 'stop' and 'length' come from the model; 'cancelled', 'timeout'
 * and 'error' mark a reply cut short, whose text is what the model produced until then.
 */
export type FinishReason = 'stop' | 'length' | 'cancelled' | 'timeout' | 'error';
export type RoomKind = 'group' | 'direct' | 'conversation';
export type Visibility = 'public' | 'private';
export type MemberRole = 'owner' | 'member';

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
}

export interface HistoryPageDto {
  /** Chronological (oldest first), tombstones included. */
  items: MessageDto[];
  /** More in the direction asked (older for latest/before, newer for after). */
  hasMore: boolean;
  hasMoreBefore: boolean;
  hasMoreAfter: boolean;
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
  memberCount: number;
  /** Whether the caller is a member. */
  joined: boolean;
  myRole: MemberRole | null;
}

export interface MemberDto {
  userId: string;
  username: string;
  displayName: string | null;
  role: MemberRole;
  joinedAt: Date;
}

export interface ReadStateDto {
  roomId: string;
  /** Never moves backwards. */
  lastReadMessageId: number;
  unreadCount: number;
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
  content: string;
  replyToId?: number;
}
export interface MessageEditPayload {
  messageId: number;
  content: string;
}
export interface MessageDeletePayload {
  messageId: number;
}
export interface ReactionPayload {
  messageId: number;
  /** An emoji or a :shortcode:. */
  emoji: string;
}
export interface ReadMarkPayload extends RoomPayload {
  messageId: number;
}
export interface HistoryFetchPayload extends RoomPayload {
  before?: number;
  after?: number;
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
