import { Check, Column, Entity, ForeignKey, PrimaryColumn, UpdateDateColumn } from 'typeorm';
import { Room } from '../rooms/room.entity';
import { User } from '../users/user.entity';

/** Who speaks when several personas share a room (docs/personas.md, "Turn-taking"). */
export const TURN_POLICIES = ['mention', 'round-robin', 'auto', 'director'] as const;
export type TurnPolicy = (typeof TURN_POLICIES)[number];

/** Most personas the `auto` policy lets answer one message. */
export const MAX_SPEAKERS_CAP = 10;

/**
 * A group room's turn-taking policy and loop-guard overrides; a room without a row has the
 * `mention` policy and no cross-talk. Written by PersonaTurnStore only; the schema of
 * migrations/1763780800000-PersonaTurns.ts, exactly.
 */
@Entity('room_persona_settings')
@Check(
  'room_persona_settings_policy_check',
  `policy IN ('mention', 'round-robin', 'auto', 'director')`,
)
@Check('room_persona_settings_max_speakers_check', `max_speakers >= 1 AND max_speakers <= 10`)
@Check('room_persona_settings_max_consecutive_turns_check', `max_consecutive_turns >= 1`)
@Check('room_persona_settings_chain_budget_check', `chain_budget >= 0`)
@Check('room_persona_settings_cooldown_ms_check', `cooldown_ms >= 0`)
export class RoomPersonaSettings {
  @ForeignKey(() => Room, { name: 'room_persona_settings_room_id_fkey', onDelete: 'CASCADE' })
  @PrimaryColumn({
    name: 'room_id',
    type: 'uuid',
    primaryKeyConstraintName: 'room_persona_settings_pkey',
  })
  roomId: string;

  @Column({ type: 'varchar', length: 16, default: 'mention' })
  policy: TurnPolicy;

  /** Whether a persona's reply may call other personas (under the loop guards). */
  @Column({ name: 'cross_talk', type: 'boolean', default: false })
  crossTalk: boolean;

  @Column({ name: 'max_speakers', type: 'integer', default: 1 })
  maxSpeakers: number;

  @Column({ type: 'integer', default: 0 })
  seed: number;

  /** null: PERSONA_MAX_CONSECUTIVE_TURNS. */
  @Column({ name: 'max_consecutive_turns', type: 'integer', nullable: true })
  maxConsecutiveTurns: number | null;

  /** null: PERSONA_CHAIN_BUDGET. */
  @Column({ name: 'chain_budget', type: 'integer', nullable: true })
  chainBudget: number | null;

  /** null: PERSONA_COOLDOWN_MS. */
  @Column({ name: 'cooldown_ms', type: 'integer', nullable: true })
  cooldownMs: number | null;

  @ForeignKey(() => User, { name: 'room_persona_settings_updated_by_fkey', onDelete: 'SET NULL' })
  @Column({ name: 'updated_by', type: 'uuid', nullable: true })
  updatedBy: string | null;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt: Date;
}
