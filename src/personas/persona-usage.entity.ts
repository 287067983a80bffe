import { Column, Entity, PrimaryColumn } from 'typeorm';

/**
 * Tokens spent by persona replies, summed per UTC day, user who called the persona, room and
 * persona (docs/personas.md "Usage and budgets"). Written by PersonaUsageStore only. No foreign
 * keys on purpose: what was spent outlives a deleted room, user or persona, and still counts
 * against the day's global budget. The schema of migrations/ (PersonaUsage), exactly.
 */
@Entity('persona_usage_daily')
export class PersonaUsageDaily {
  @PrimaryColumn({ type: 'date', primaryKeyConstraintName: 'persona_usage_daily_pkey' })
  day: string;

  @PrimaryColumn({
    name: 'user_id',
    type: 'uuid',
    primaryKeyConstraintName: 'persona_usage_daily_pkey',
  })
  userId: string;

  @PrimaryColumn({
    name: 'room_id',
    type: 'uuid',
    primaryKeyConstraintName: 'persona_usage_daily_pkey',
  })
  roomId: string;

  @PrimaryColumn({
    name: 'persona_id',
    type: 'uuid',
    primaryKeyConstraintName: 'persona_usage_daily_pkey',
  })
  personaId: string;

  @Column({ type: 'integer', default: 0 })
  generations: number;

  @Column({ name: 'prompt_tokens', type: 'bigint', default: 0 })
  promptTokens: string;

  @Column({ name: 'completion_tokens', type: 'bigint', default: 0 })
  completionTokens: string;
}
