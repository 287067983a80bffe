import {
  Check,
  Column,
  CreateDateColumn,
  Entity,
  ForeignKey,
  Index,
  PrimaryColumn,
  PrimaryGeneratedColumn,
  UpdateDateColumn,
} from 'typeorm';
import { Room } from '../rooms/room.entity';
import { User } from '../users/user.entity';

/** What people type after `@` to call a persona: lower-case letters, digits and `_`. */
export const HANDLE_PATTERN = /^[a-z0-9_]{2,32}$/;

/** The schema of migrations/ (Personas), exactly (test/schema-drift.e2e-spec.ts). */
@Entity('personas')
@Check('personas_handle_check', `handle ~ '^[a-z0-9_]{2,32}$'`)
@Check('personas_temperature_check', `temperature >= 0 AND temperature <= 2`)
@Check('personas_max_tokens_check', `max_tokens > 0`)
@Check('personas_stop_check', `cardinality(stop) <= 4`)
@Check('personas_daily_token_budget_check', `daily_token_budget >= 0`)
@Check('personas_talkativeness_check', `talkativeness >= 0 AND talkativeness <= 1`)
export class Persona {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'personas_pkey' })
  id: string;

  /** Unique, stored lower-case (HANDLE_PATTERN). */
  @Column({ type: 'varchar', length: 32, unique: true })
  handle: string;

  @Column({ name: 'display_name', type: 'varchar', length: 80 })
  displayName: string;

  /** Admins only: users never see it (it is the persona's "source code"). */
  @Column({ name: 'system_prompt', type: 'text', default: '' })
  systemPrompt: string;

  /** Appended to the system prompt, e.g. "short answers, dry humour". */
  @Column({ type: 'varchar', length: 2000, default: '' })
  style: string;

  /** null: the server-wide LLM_MODEL. */
  @Column({ type: 'varchar', length: 200, nullable: true })
  model: string | null;

  // A function: PostgreSQL reports a real default as the bare literal 0.7 (not '0.7').
  @Column({ type: 'real', default: () => '0.7' })
  temperature: number;

  @Column({ name: 'max_tokens', type: 'integer', default: 512 })
  maxTokens: number;

  /** Sequences where the model stops writing (OpenAI's `stop`); [] sends none. */
  @Column({ type: 'text', array: true, default: () => `'{}'` })
  stop: string[];

  @Column({ type: 'boolean', default: true })
  enabled: boolean;

  /** The `auto` turn policy's chance (0–1) that the persona speaks unasked (PersonaTurns). */
  @Column({ type: 'real', default: () => '0.5' })
  talkativeness: number;

  @Column({ name: 'avatar_url', type: 'varchar', length: 2000, nullable: true })
  avatarUrl: string | null;

  /**
   * Tokens this persona may spend per UTC day, all rooms and users together; null: the
   * server-wide PERSONA_DAILY_TOKENS_PERSONA; 0: unlimited (docs/personas.md).
   */
  @Column({ name: 'daily_token_budget', type: 'integer', nullable: true })
  dailyTokenBudget: number | null;

  @ForeignKey(() => User, { name: 'personas_created_by_fkey', onDelete: 'SET NULL' })
  @Column({ name: 'created_by', type: 'uuid', nullable: true })
  createdBy: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt: Date;
}

/** A persona present in a room: mentions of its handle there call it. */
@Entity('room_personas')
export class RoomPersona {
  @ForeignKey(() => Room, { name: 'room_personas_room_id_fkey', onDelete: 'CASCADE' })
  @PrimaryColumn({ name: 'room_id', type: 'uuid', primaryKeyConstraintName: 'room_personas_pkey' })
  roomId: string;

  @Index('room_personas_persona_id_idx')
  @ForeignKey(() => Persona, { name: 'room_personas_persona_id_fkey', onDelete: 'CASCADE' })
  @PrimaryColumn({
    name: 'persona_id',
    type: 'uuid',
    primaryKeyConstraintName: 'room_personas_pkey',
  })
  personaId: string;

  @ForeignKey(() => User, { name: 'room_personas_added_by_fkey', onDelete: 'SET NULL' })
  @Column({ name: 'added_by', type: 'uuid', nullable: true })
  addedBy: string | null;

  @CreateDateColumn({ name: 'added_at', type: 'timestamptz' })
  addedAt: Date;
}
