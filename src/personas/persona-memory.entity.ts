import {
  Column,
  CreateDateColumn,
  Entity,
  ForeignKey,
  Index,
  PrimaryColumn,
  UpdateDateColumn,
} from 'typeorm';
import { Room } from '../rooms/room.entity';
import { Persona } from './persona.entity';

/**
 * A persona's rolling summary of a room's (or conversation's) older history: what no longer
 * fits its context, folded in by the model (docs/personas.md, "Memory"). Written by
 * PersonaMemoryStore only. The schema of migrations/ (PersonaMemory), exactly.
 */
@Entity('persona_summaries')
export class PersonaSummaryRow {
  @ForeignKey(() => Room, { name: 'persona_summaries_room_id_fkey', onDelete: 'CASCADE' })
  @PrimaryColumn({
    name: 'room_id',
    type: 'uuid',
    primaryKeyConstraintName: 'persona_summaries_pkey',
  })
  roomId: string;

  @Index('persona_summaries_persona_id_idx')
  @ForeignKey(() => Persona, { name: 'persona_summaries_persona_id_fkey', onDelete: 'CASCADE' })
  @PrimaryColumn({
    name: 'persona_id',
    type: 'uuid',
    primaryKeyConstraintName: 'persona_summaries_pkey',
  })
  personaId: string;

  @Column({ type: 'text' })
  summary: string;

  /** The newest message folded in (bigint: read as a string). */
  @Column({ name: 'through_message_id', type: 'bigint' })
  throughMessageId: string;

  /** Messages folded in since the summary began (tombstones included). */
  @Column({ name: 'folded_messages', type: 'integer', default: 0 })
  foldedMessages: number;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt: Date;
}
