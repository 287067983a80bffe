import { Injectable } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import type { PersonaStreamDelta, PersonaStreamEnd, PersonaStreamStart } from '../chat/contract';
import type { MessageDto, ReactionSummaryDto } from '../messages/dto/message.dto';
import type { RoomDto } from '../rooms/dto/room.dto';
import type { Role } from '../users/user.entity';

/**
 * Events services publish after their transaction commits. The chat gateway is the one place
 * that turns them into socket emits; services never import the gateway.
 */
export interface DomainEventMap {
  /** A session (or every session of a user, when sessionId is absent) stopped being valid. */
  'session.revoked': { userId: string; sessionId?: string; reason: string };
  /** An admin changed a user's role: live sockets of that user must be re-evaluated. */
  'user.role.changed': { userId: string; role: Role };
  'message.created': { message: MessageDto };
  'message.updated': { message: MessageDto };
  'message.deleted': { message: MessageDto };
  'reaction.updated': {
    roomId: string;
    messageId: number;
    version: number;
    reactions: ReactionSummaryDto[];
    userId: string;
    emoji: string;
    added: boolean;
  };
  'member.joined': {
    roomId: string;
    user: { id: string; username: string; displayName: string | null };
  };
  'member.left': { roomId: string; userId: string; reason: 'left' | 'removed' };
  'room.created': { room: RoomDto; memberIds: string[] };
  'room.updated': { room: RoomDto };
  /** `public`: a public group room, listed for every user (so everyone is told). */
  'room.deleted': { roomId: string; memberIds: string[]; public: boolean };
  'read.updated': { roomId: string; userId: string; lastReadMessageId: number };
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
