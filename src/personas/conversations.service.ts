import { Injectable } from '@nestjs/common';
import { AccessPolicy } from '../access/access.policy';
import type { AuthUser } from '../auth/auth-user';
import { AppError, ErrorCode } from '../common/errors';
import { forViewer, MessageStore } from '../messages/message-store';
import { RoomsService } from '../rooms/rooms.service';
import {
  ConversationDto,
  ConversationPageDto,
  CreateConversationDto,
  ListConversationsQuery,
} from './dto/conversation.dto';
import { ConversationRow, PersonaStore } from './persona.store';

/**
 * A conversation is a private room of kind `conversation`: its owner as the only member, one
 * persona in it, and every message of the owner answered by that persona. Its id is the room
 * id, so messages go through the ordinary message routes and socket commands.
 *
 * Isolation: a conversation is its owner's alone. Everyone else, admins included, gets 404 on
 * every conversation route and on the room's message routes (RoomsService.access), so they
 * cannot even learn that it exists.
 */
@Injectable()
export class ConversationsService {
  constructor(
    private readonly personas: PersonaStore,
    private readonly rooms: RoomsService,
    private readonly access: AccessPolicy,
    private readonly messages: MessageStore,
  ) {}

  async list(user: AuthUser, q: ListConversationsQuery): Promise<ConversationPageDto> {
    const [activity, id] = q.cursor ? q.cursor.split('_') : [null, null];
    const rows = await this.personas.conversationsOf(user.id, { activity, id, limit: q.limit + 1 });
    const page = await this.toDtos(rows.slice(0, q.limit), user);
    const tail = rows[q.limit - 1];
    return {
      items: page,
      nextCursor: rows.length > q.limit ? `${tail.activity}_${tail.id}` : null,
    };
  }

  async get(user: AuthUser, id: string): Promise<ConversationDto> {
    await this.owned(user, id);
    const [row] = await this.personas.conversationsOf(user.id, { only: id, limit: 1 });
    return (await this.toDtos([row], user))[0];
  }

  async create(user: AuthUser, dto: CreateConversationDto): Promise<ConversationDto> {
    const persona = await this.personas.findById(dto.personaId);
    if (!persona) throw AppError.notFound('Persona');
    if (!persona.enabled) {
      throw AppError.invalid('Validation failed', { personaId: ['this persona is disabled'] });
    }
    // One transaction: a persona deleted in between leaves no conversation nobody can answer in.
    const room = await this.rooms.createConversation(
      user,
      dto.title ?? persona.displayName,
      async (em, roomId) => {
        if (!(await this.personas.linkConversation(em, roomId, persona.id, user.id)))
          throw AppError.notFound('Persona');
      },
    );
    return this.get(user, room.id);
  }

  async rename(user: AuthUser, id: string, title: string): Promise<ConversationDto> {
    await this.owned(user, id);
    await this.rooms.renameOwned(id, title, user.id);
    return this.get(user, id);
  }

  /** Deletes the conversation with all its messages (the room goes, and everything with it). */
  async remove(user: AuthUser, id: string): Promise<void> {
    await this.owned(user, id);
    await this.rooms.removeOwned(id);
  }

  /** The one isolation rule: a conversation room of which the caller is a member (its owner). */
  private async owned(user: AuthUser, id: string): Promise<void> {
    try {
      const { room } = await this.access.room(user, id, 'write');
      if (room.kind === 'conversation') return;
    } catch (err) {
      const hidden =
        err instanceof AppError &&
        (err.code === ErrorCode.NOT_FOUND || err.code === ErrorCode.FORBIDDEN);
      if (!hidden) throw err;
    }
    throw AppError.notFound('Conversation');
  }

  private async toDtos(rows: ConversationRow[], user: AuthUser): Promise<ConversationDto[]> {
    const lastIds = rows.filter((r) => r.last_id !== null).map((r) => Number(r.last_id));
    const last = new Map((await this.messages.findByIds(lastIds)).map((m) => [m.id, m]));
    return rows.map((r) => {
      const lastMessage = r.last_id === null ? undefined : last.get(Number(r.last_id));
      return {
        id: r.id,
        title: r.name,
        persona:
          r.persona_id === null
            ? null
            : {
                id: r.persona_id,
                handle: r.handle!,
                displayName: r.display_name!,
                avatarUrl: r.avatar_url,
                enabled: r.enabled!,
              },
        createdAt: r.created_at,
        updatedAt: r.updated_at,
        lastMessage: lastMessage ? forViewer(lastMessage, user.id) : null,
      };
    });
  }
}
