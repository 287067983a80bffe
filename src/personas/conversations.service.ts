import { AccessPolicy } from '../access/access.policy';
import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, Repository } from 'typeorm';
import type { AuthUser } from '../auth/auth-user';
import { DomainEvents } from '../events/domain-events';
import { AppError, ErrorCode } from '../common/errors';
import { forViewer, MessageStore } from '../messages/message-store';
import { RoomsService } from '../rooms/rooms.service';
import {
  ConversationDto,
  ConversationPageDto,
  CreateConversationDto,
  ListConversationsQuery,
} from './dto/conversation.dto';
import { Persona, RoomPersona } from './persona.entity';

interface ConversationRow {
  id: string;
  name: string;
  created_at: Date;
  updated_at: Date;
  activity: string;
  last_id: string | null;
  persona_id: string | null;
  handle: string | null;
  display_name: string | null;
  avatar_url: string | null;
  enabled: boolean | null;
}

/**
 * A conversation is a private room of kind `conversation`: its owner as the only member, one
 * persona in it, and every message of the owner answered by that persona. Its id is the room
 * id, so messages go through the ordinary message routes and socket commands.
 *
 * Isolation: a conversation is its owner's alone. Everyone else, admins included, gets 404 on
 * every conversation route and on the room's message routes (AccessPolicy), so they
 * cannot even learn that it exists.
 */
@Injectable()
export class ConversationsService {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    @InjectRepository(Persona) private readonly personas: Repository<Persona>,
    @InjectRepository(RoomPersona) private readonly links: Repository<RoomPersona>,
    private readonly rooms: RoomsService,
    private readonly access: AccessPolicy,
    private readonly store: MessageStore,
    private readonly events: DomainEvents,
  ) {}

  async list(user: AuthUser, q: ListConversationsQuery): Promise<ConversationPageDto> {
    const [activity, id] = q.cursor ? q.cursor.split('_') : [null, null];
    const rows = await this.query(user.id, { activity, id, limit: q.limit + 1 });
    const page = await this.toDtos(rows.slice(0, q.limit), user);
    const tail = rows[q.limit - 1];
    return {
      items: page,
      nextCursor: rows.length > q.limit ? `${tail.activity}_${tail.id}` : null,
    };
  }

  async get(user: AuthUser, id: string): Promise<ConversationDto> {
    await this.owned(user, id);
    const [row] = await this.query(user.id, { only: id, limit: 1 });
    return (await this.toDtos([row], user))[0];
  }

  async create(user: AuthUser, dto: CreateConversationDto): Promise<ConversationDto> {
    const persona = await this.personas.findOneBy({ id: dto.personaId });
    if (!persona) throw AppError.notFound('Persona');
    if (!persona.enabled) {
      throw AppError.invalid('Validation failed', { personaId: ['this persona is disabled'] });
    }
    const room = await this.rooms.createConversation(user, dto.title ?? persona.displayName);
    try {
      await this.links.insert({ roomId: room.id, personaId: persona.id, addedBy: user.id });
    } catch (err) {
      // Persona deleted in between: do not leave a conversation nobody can answer in.
      await this.rooms.removeOwned(room.id);
      if ((err as { code?: string }).code === '23503') throw AppError.notFound('Persona');
      throw err;
    }
    // The owner's connected sockets subscribe to the new room, as for any room they get.
    this.events.emit('room.created', {
      room: await this.rooms.load(room.id, user.id),
      memberIds: [user.id],
    });
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

  /** Newest activity first: the last live message, or the creation of an empty conversation. */
  private query(
    userId: string,
    o: { only?: string; activity?: string | null; id?: string | null; limit: number },
  ): Promise<ConversationRow[]> {
    return this.db.query<ConversationRow[]>(
      `WITH mine AS (
         SELECT r.id, r.name, r.created_at, r.updated_at, lm.id AS last_id,
                (extract(epoch FROM COALESCE(lm.created_at, r.created_at)) * 1000000)::bigint AS activity
           FROM memberships ms
           JOIN rooms r ON r.id = ms.room_id AND r.kind = 'conversation'
           LEFT JOIN LATERAL (SELECT x.id, x.created_at FROM messages x
                               WHERE x.room_id = r.id AND x.deleted_at IS NULL
                               ORDER BY x.id DESC LIMIT 1) lm ON true
          WHERE ms.user_id = $1 AND ($2::uuid IS NULL OR r.id = $2))
       SELECT mine.*, p.id AS persona_id, p.handle, p.display_name, p.avatar_url, p.enabled
         FROM mine
         LEFT JOIN room_personas rp ON rp.room_id = mine.id
         LEFT JOIN personas p ON p.id = rp.persona_id
        WHERE $3::bigint IS NULL OR (mine.activity, mine.id) < ($3::bigint, $4::uuid)
        ORDER BY mine.activity DESC, mine.id DESC
        LIMIT $5`,
      [userId, o.only ?? null, o.activity ?? null, o.id ?? null, o.limit],
    );
  }

  private async toDtos(rows: ConversationRow[], user: AuthUser): Promise<ConversationDto[]> {
    const lastIds = rows.filter((r) => r.last_id !== null).map((r) => Number(r.last_id));
    const last = new Map((await this.store.findByIds(lastIds)).map((m) => [m.id, m]));
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
