import { Injectable } from '@nestjs/common';
import type { AuthUser } from '../auth/auth-user';
import { AuditService } from '../audit/audit.service';
import { AppError } from '../common/errors';
import { AccessPolicy } from '../access/access.policy';
import type { EntityManager } from 'typeorm';
import { MessageWriter } from '../messages/message-writer';
import {
  CreatePersonaDto,
  ListPersonasQuery,
  PersonaDto,
  PersonaPageDto,
  UpdatePersonaDto,
} from './dto/persona.dto';
import { PersonaRepliesService } from './persona-replies.service';
import { Persona } from './persona.entity';
import { PersonaStore } from './persona.store';

/**
 * Personas and their presence in rooms. Anyone signed in may list and read personas; only
 * admins see the system prompt (it is how the persona is made, not part of what it says).
 * Every change (create, update, delete, attach, detach) is audited in its transaction.
 */
@Injectable()
export class PersonasService {
  constructor(
    private readonly personas: PersonaStore,
    private readonly access: AccessPolicy,
    private readonly writer: MessageWriter,
    private readonly replies: PersonaRepliesService,
    private readonly audit: AuditService,
  ) {}

  async list(user: AuthUser, q: ListPersonasQuery): Promise<PersonaPageDto> {
    const rows = await this.personas.page(q.after, q.limit + 1);
    const items = rows.slice(0, q.limit).map((p) => toPersonaDto(p, user));
    return { items, nextCursor: rows.length > q.limit ? items[items.length - 1].handle : null };
  }

  async get(user: AuthUser, id: string): Promise<PersonaDto> {
    return toPersonaDto(await this.find(id), user);
  }

  async create(admin: AuthUser, dto: CreatePersonaDto): Promise<PersonaDto> {
    const persona = await this.writer.transaction(async ({ em }) => {
      const created = await this.personas.insert({ ...dto, createdBy: admin.id }, em);
      await this.record(em, admin, 'persona.create', created);
      return created;
    });
    return toPersonaDto(await this.find(persona.id), admin);
  }

  async update(admin: AuthUser, id: string, dto: UpdatePersonaDto): Promise<PersonaDto> {
    const persona = await this.find(id);
    // Which fields changed, not their values (a system prompt can be long); the new handle.
    const fields = Object.keys(dto).filter((k) => dto[k as keyof UpdatePersonaDto] !== undefined);
    const named = { id, handle: dto.handle ?? persona.handle };
    await this.writer.transaction(async ({ em }) => {
      await this.personas.update(persona, dto, em);
      await this.record(em, admin, 'persona.update', named, undefined, { fields });
    });
    this.replies.forgetAll();
    return toPersonaDto(await this.find(id), admin);
  }

  /**
   * Deletes the persona and its room links. Conversations with it stay readable (without a
   * persona, nothing answers there); its replies keep their author id without a name.
   */
  async remove(admin: AuthUser, id: string): Promise<void> {
    const persona = await this.find(id);
    await this.writer.transaction(async ({ em }) => {
      if (!(await this.personas.delete(id, em))) throw AppError.notFound('Persona');
      await this.record(em, admin, 'persona.delete', persona);
    });
    this.replies.forgetAll();
  }

  /** The personas present in a room (for members: who can be called with @handle). */
  async inRoom(user: AuthUser, roomId: string): Promise<PersonaDto[]> {
    await this.access.room(user, roomId, 'read');
    const rows = await this.personas.inRoom(roomId);
    return rows.map((p) => toPersonaDto(p, user));
  }

  /** Puts a persona in a group room (idempotent); the room is told with a system message. */
  async attach(admin: AuthUser, roomId: string, personaId: string): Promise<PersonaDto[]> {
    await this.groupRoom(admin, roomId);
    const persona = await this.find(personaId);
    const text = `${persona.displayName} (@${persona.handle}) was added to the room`;
    await this.writer.transaction(async (tx) => {
      if (!(await this.personas.link(tx.em, roomId, personaId, admin.id))) return;
      await this.record(tx.em, admin, 'persona.attach', persona, roomId);
      await tx.notice(roomId, text);
    });
    this.replies.forgetRoom(roomId);
    return this.inRoom(admin, roomId);
  }

  async detach(admin: AuthUser, roomId: string, personaId: string): Promise<void> {
    await this.groupRoom(admin, roomId);
    const persona = await this.find(personaId);
    const text = `${persona.displayName} (@${persona.handle}) was removed from the room`;
    const removed = await this.writer.transaction(async (tx) => {
      if (!(await this.personas.unlink(tx.em, roomId, personaId))) return false;
      await this.record(tx.em, admin, 'persona.detach', persona, roomId);
      await tx.notice(roomId, text);
      return true;
    });
    if (!removed) throw AppError.notFound('Persona in this room');
    this.replies.forgetRoom(roomId);
  }

  /**
   * Stops a reply while it streams (the `persona.cancel` socket command and its REST twin):
   * the person who triggered it or an admin. See PersonaRepliesService.cancel.
   */
  cancel(user: AuthUser, streamId: string): Promise<void> {
    return this.replies.cancel(user, streamId);
  }

  /** The audit entry of a persona change, in its transaction (the handle names it). */
  private record(
    em: EntityManager,
    admin: AuthUser,
    action:
      'persona.create' | 'persona.update' | 'persona.delete' | 'persona.attach' | 'persona.detach',
    persona: Pick<Persona, 'id' | 'handle'>,
    roomId?: string,
    details: Record<string, unknown> = {},
  ): Promise<void> {
    return this.audit.record(
      {
        actorId: admin.id,
        action,
        targetType: 'persona',
        targetId: persona.id,
        roomId,
        details: { handle: persona.handle, ...details },
      },
      em,
    );
  }

  private async find(id: string): Promise<Persona> {
    const persona = await this.personas.findById(id);
    if (!persona) throw AppError.notFound('Persona');
    return persona;
  }

  /** Personas join group rooms; a conversation's persona is fixed when it is created. */
  private async groupRoom(admin: AuthUser, roomId: string): Promise<void> {
    const { room } = await this.access.room(admin, roomId, 'manage');
    if (room.kind !== 'group') {
      throw AppError.invalid(`Personas cannot be added to or removed from a ${room.kind} room`);
    }
  }
}

export function toPersonaDto(p: Persona, viewer: AuthUser): PersonaDto {
  return {
    id: p.id,
    handle: p.handle,
    displayName: p.displayName,
    ...(viewer.role === 'admin' ? { systemPrompt: p.systemPrompt } : {}),
    style: p.style,
    model: p.model,
    temperature: p.temperature,
    maxTokens: p.maxTokens,
    stop: p.stop,
    talkativeness: p.talkativeness,
    enabled: p.enabled,
    avatarUrl: p.avatarUrl,
    dailyTokenBudget: p.dailyTokenBudget,
    createdBy: p.createdBy,
    createdAt: p.createdAt,
    updatedAt: p.updatedAt,
  };
}
