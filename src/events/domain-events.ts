import { Injectable } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import type {
  MemberJoined,
  MemberLeft,
  PersonaStreamDelta,
  PersonaStreamEnd,
  PersonaStreamStart,
  ReactionUpdated,
  ReadUpdated,
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
  MemberJoined,
  MemberLeft,
  PersonaStreamDelta,
  PersonaStreamEnd,
  PersonaStreamStart,
  ReactionUpdated,
  ReadUpdated,
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
