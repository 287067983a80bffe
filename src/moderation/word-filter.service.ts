import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { AccessPolicy } from '../access/access.policy';
import { AuditService } from '../audit/audit.service';
import type { AuthUser } from '../auth/auth-user';
import { AppError } from '../common/errors';
import type { Env } from '../config/env';
import { DomainEvents } from '../events/domain-events';
import type {
  CreateWordFilterDto,
  WordFilterDto,
  WordFilterListDto,
} from './dto/room-settings.dto';
import { normalizePattern, patternProblem } from './word-filter';
import { WordFilterStore } from './word-filter.store';

/**
 * Word filters: a room's rules (managed by whoever may moderate it) and the global ones
 * (admins; the controller's @Roles). Each change commits with its audit row, then
 * `filters.changed` makes every instance recompile the rules (RoomSettingsCache).
 */
@Injectable()
export class WordFilterService {
  private readonly maxPerRoom: number;
  private readonly maxGlobal: number;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly store: WordFilterStore,
    private readonly access: AccessPolicy,
    private readonly audit: AuditService,
    private readonly events: DomainEvents,
    config: ConfigService<Env, true>,
  ) {
    this.maxPerRoom = config.get('WORD_FILTERS_MAX_PER_ROOM', { infer: true });
    this.maxGlobal = config.get('WORD_FILTERS_MAX_GLOBAL', { infer: true });
  }

  async list(user: AuthUser, roomId: string): Promise<WordFilterListDto> {
    await this.moderated(user, roomId);
    return { items: await this.store.list(roomId), max: this.maxPerRoom };
  }

  async add(user: AuthUser, roomId: string, dto: CreateWordFilterDto): Promise<WordFilterDto> {
    await this.moderated(user, roomId);
    return this.create(user, roomId, dto);
  }

  async remove(user: AuthUser, roomId: string, filterId: string): Promise<void> {
    await this.moderated(user, roomId);
    await this.delete(user, roomId, filterId);
  }

  async listGlobal(): Promise<WordFilterListDto> {
    return { items: await this.store.list(null), max: this.maxGlobal };
  }

  addGlobal(admin: AuthUser, dto: CreateWordFilterDto): Promise<WordFilterDto> {
    return this.create(admin, null, dto);
  }

  removeGlobal(admin: AuthUser, filterId: string): Promise<void> {
    return this.delete(admin, null, filterId);
  }

  /** Rooms one may moderate (never conversations); group rooms only have a filter of their own. */
  private async moderated(user: AuthUser, roomId: string): Promise<void> {
    const { room } = await this.access.room(user, roomId, 'moderate');
    if (room.kind !== 'group')
      throw AppError.invalid('Word filters are set on group rooms (global ones apply everywhere)');
  }

  private async create(
    actor: AuthUser,
    roomId: string | null,
    dto: CreateWordFilterDto,
  ): Promise<WordFilterDto> {
    const pattern = normalizePattern(dto.pattern);
    const problem = patternProblem(pattern);
    if (problem) throw AppError.invalid('Validation failed', { pattern: [problem] });
    const max = roomId ? this.maxPerRoom : this.maxGlobal;
    const row = await this.db.transaction(async (em) => {
      const added = await this.store.insert(
        em,
        { roomId, pattern, action: dto.action, createdBy: actor.id },
        max,
      );
      if (added === 'limit')
        throw AppError.conflict(`This word filter already holds its maximum of ${max} rules`);
      if (added === 'duplicate') throw AppError.conflict(`"${pattern}" is already a rule here`);
      if (added === 'gone') throw AppError.notFound('Room');
      await this.audit.record(
        {
          actorId: actor.id,
          action: 'filter.add',
          targetType: 'filter',
          targetId: added.id,
          roomId,
          details: { pattern, action: dto.action, scope: roomId ? 'room' : 'global' },
        },
        em,
      );
      return added;
    });
    this.events.emit('filters.changed', { roomId });
    return row;
  }

  private async delete(actor: AuthUser, roomId: string | null, filterId: string): Promise<void> {
    await this.db.transaction(async (em) => {
      const removed = await this.store.remove(em, roomId, filterId);
      if (!removed) throw AppError.notFound('Word filter');
      await this.audit.record(
        {
          actorId: actor.id,
          action: 'filter.remove',
          targetType: 'filter',
          targetId: filterId,
          roomId,
          details: {
            pattern: removed.pattern,
            action: removed.action,
            scope: roomId ? 'room' : 'global',
          },
        },
        em,
      );
    });
    this.events.emit('filters.changed', { roomId });
  }
}
