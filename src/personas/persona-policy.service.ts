import { Injectable } from '@nestjs/common';
import { AccessPolicy } from '../access/access.policy';
import { AuditService } from '../audit/audit.service';
import type { AuthUser } from '../auth/auth-user';
import { AppError } from '../common/errors';
import { MessageWriter } from '../messages/message-writer';
import type { PersonaPolicyDto, UpdatePersonaPolicyDto } from './dto/persona-policy.dto';
import { PersonaRepliesService } from './persona-replies.service';
import { DEFAULT_TURN_SETTINGS, PersonaTurnStore, type TurnSettings } from './persona-turn.store';
import { PersonaTurns } from './persona-turns.service';

const POLICY_NAMES: Record<TurnSettings['policy'], string> = {
  mention: 'mention (personas answer when called with @handle)',
  'round-robin': 'round-robin (personas take turns)',
  auto: 'auto (personas speak by talkativeness)',
  director: 'director (the model picks who speaks)',
};

/**
 * A room's turn-taking (GET/PUT /rooms/:id/persona-policy): read by whoever reads the room,
 * changed by whoever moderates it (its owner and moderators, admins; AccessPolicy 'moderate'),
 * group rooms only. A change is audited in its transaction (`room.persona_policy`, the changed
 * fields' old and new values), and a change of the policy or of cross-talk is told to the room
 * with a notice. Every instance's reply path sees it at once (their room caches are dropped
 * here and through Redis; at the latest after ROOM_SETTINGS_TTL_MS).
 */
@Injectable()
export class PersonaPolicyService {
  constructor(
    private readonly access: AccessPolicy,
    private readonly store: PersonaTurnStore,
    private readonly writer: MessageWriter,
    private readonly audit: AuditService,
    private readonly turns: PersonaTurns,
    private readonly replies: PersonaRepliesService,
  ) {}

  async get(user: AuthUser, roomId: string): Promise<PersonaPolicyDto> {
    await this.access.room(user, roomId, 'read');
    return this.toDto((await this.store.get(roomId)) ?? DEFAULT_TURN_SETTINGS);
  }

  async update(
    user: AuthUser,
    roomId: string,
    dto: UpdatePersonaPolicyDto,
  ): Promise<PersonaPolicyDto> {
    const { room, role } = await this.access.room(user, roomId, 'moderate');
    if (room.kind !== 'group') {
      throw AppError.invalid('Turn-taking applies to group rooms only');
    }
    // The server's role as it is now (the grant reads it fresh): only admins loosen the guards.
    if (role !== 'admin') this.onlyTighter(dto);
    const keys = (Object.keys(dto) as (keyof UpdatePersonaPolicyDto)[]).filter(
      (k) => dto[k] !== undefined,
    );
    const saved = await this.writer.transaction(async (tx) => {
      const before = await this.store.lock(tx.em, roomId);
      const after: TurnSettings = { ...before };
      for (const k of keys) (after as unknown as Record<string, unknown>)[k] = dto[k];
      const changed = keys.filter((k) => before[k] !== after[k]);
      if (!changed.length) return before;
      await this.store.save(tx.em, roomId, after, user.id);
      await this.audit.record(
        {
          actorId: user.id,
          action: 'room.persona_policy',
          targetType: 'room',
          targetId: roomId,
          roomId,
          details: {
            from: Object.fromEntries(changed.map((k) => [k, before[k]])),
            to: Object.fromEntries(changed.map((k) => [k, after[k]])),
          },
        },
        tx.em,
      );
      const told: string[] = [];
      if (changed.includes('policy')) told.push(`turn-taking is now ${POLICY_NAMES[after.policy]}`);
      if (changed.includes('crossTalk')) {
        told.push(
          after.crossTalk
            ? 'personas may now answer each other'
            : 'personas no longer answer each other',
        );
      }
      if (told.length) {
        const text = told.join('; ');
        await tx.notice(roomId, `${user.username} changed the personas' settings: ${text}.`);
      }
      return after;
    });
    this.replies.forgetRoom(roomId);
    return this.toDto(saved);
  }

  /**
   * Room owners and moderators may make the loop guards stricter than the server's defaults,
   * never looser: more turns in a row, a bigger budget or a shorter cooldown is for admins.
   */
  private onlyTighter(dto: UpdatePersonaPolicyDto): void {
    const d = this.turns.limits(DEFAULT_TURN_SETTINGS);
    const looser: string[] = [];
    if (dto.maxConsecutiveTurns != null && dto.maxConsecutiveTurns > d.maxConsecutiveTurns)
      looser.push(`maxConsecutiveTurns above ${d.maxConsecutiveTurns}`);
    if (dto.chainBudget != null && dto.chainBudget > d.chainBudget)
      looser.push(`chainBudget above ${d.chainBudget}`);
    if (dto.cooldownMs != null && dto.cooldownMs < d.cooldownMs)
      looser.push(`cooldownMs below ${d.cooldownMs}`);
    if (looser.length) {
      throw AppError.forbidden(
        `Only admins may loosen the loop guards beyond the server defaults: ${looser.join(', ')}`,
      );
    }
  }

  private toDto(s: TurnSettings): PersonaPolicyDto {
    const { policy, crossTalk, maxSpeakers, seed, maxConsecutiveTurns, chainBudget, cooldownMs } =
      s;
    return {
      policy,
      crossTalk,
      maxSpeakers,
      seed,
      maxConsecutiveTurns,
      chainBudget,
      cooldownMs,
      effective: this.turns.limits(s),
    };
  }
}
