import { Injectable } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import type { MessageDto, ReactionSummaryDto } from '../messages/dto/message.dto';
import type { RoomDto } from '../rooms/dto/room.dto';
import type { Role } from '../users/user.entity';

/*
 * Payloads named once: the domain events below and the socket contract (src/chat/contract.ts)
 * share these types, so what a service announces and what a client receives cannot drift.
 */
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
  finishReason: 'stop' | 'length' | 'cancelled' | 'error' | 'timeout';
  /** The persisted message (also broadcast as message.created); null when nothing was kept. */
  message: MessageDto | null;
}

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
  'message.deleted': { message: MessageDto };
  'reaction.updated': ReactionUpdated;
  'member.joined': MemberJoined;
  'member.left': MemberLeft;
  'room.created': { room: RoomDto; memberIds: string[] };
  'room.updated': { room: RoomDto };
  /** `public`: a public group room, listed for every user (so everyone is told). */
  'room.deleted': { roomId: string; memberIds: string[]; public: boolean };
  'read.updated': ReadUpdated;
  'persona.stream.start': PersonaStreamStart;
  'persona.stream.delta': PersonaStreamDelta;
  'persona.stream.end': PersonaStreamEnd;
}

export type DomainEventName = keyof DomainEventMap;

@Injectable()
export class DomainEvents {
  constructor(private readonly emitter: EventEmitter2) {}

  emit<K extends DomainEventName>(name: K, payload: DomainEventMap[K]): void {
    this.emitter.emit(name, payload);
  }
}
