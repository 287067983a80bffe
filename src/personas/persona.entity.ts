import {
  Column,
  CreateDateColumn,
  Entity,
  PrimaryColumn,
  PrimaryGeneratedColumn,
  UpdateDateColumn,
} from 'typeorm';

/** What people type after `@` to call a persona: lower-case letters, digits and `_`. */
export const HANDLE_PATTERN = /^[a-z0-9_]{2,32}$/;

@Entity('personas')
export class Persona {
  @PrimaryGeneratedColumn('uuid')
  id: string;

  /** Unique, stored lower-case (HANDLE_PATTERN). */
  @Column({ type: 'varchar' })
  handle: string;

  @Column({ name: 'display_name', type: 'varchar' })
  displayName: string;

  /** Admins only: users never see it (it is the persona's "source code"). */
  @Column({ name: 'system_prompt', type: 'text', default: '' })
  systemPrompt: string;

  /** Appended to the system prompt, e.g. "short answers, dry humour". */
  @Column({ type: 'varchar', default: '' })
  style: string;

  /** null: the server-wide LLM_MODEL. */
  @Column({ type: 'varchar', nullable: true })
  model: string | null;

  @Column({ type: 'real', default: 0.7 })
  temperature: number;

  @Column({ name: 'max_tokens', type: 'integer', default: 512 })
  maxTokens: number;

  @Column({ type: 'boolean', default: true })
  enabled: boolean;

  @Column({ name: 'avatar_url', type: 'varchar', nullable: true })
  avatarUrl: string | null;

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
  @PrimaryColumn({ name: 'room_id', type: 'uuid' })
  roomId: string;

  @PrimaryColumn({ name: 'persona_id', type: 'uuid' })
  personaId: string;

  @Column({ name: 'added_by', type: 'uuid', nullable: true })
  addedBy: string | null;

  @CreateDateColumn({ name: 'added_at', type: 'timestamptz' })
  addedAt: Date;
}
