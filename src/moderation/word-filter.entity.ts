import {
  Check,
  Column,
  CreateDateColumn,
  Entity,
  ForeignKey,
  PrimaryGeneratedColumn,
  Unique,
} from 'typeorm';
import { Room } from '../rooms/room.entity';
import { User } from '../users/user.entity';

export const WORD_FILTER_ACTIONS = ['block', 'mask'] as const;
export type WordFilterAction = (typeof WORD_FILTER_ACTIONS)[number];

/**
 * A word filter of one room, or global when `room_id` is null. Written by the ModerationStore
 * (raw SQL); the schema of migrations/1763780500000-Moderation.ts, exactly.
 */
@Entity('word_filters')
@Check('word_filters_action_check', `action IN ('block', 'mask')`)
// UNIQUE NULLS NOT DISTINCT in the migration (one global filter per pattern too), which TypeORM
// cannot declare; the schema diff compares unique constraints by name and columns.
@Unique('word_filters_room_pattern', ['roomId', 'pattern'])
export class WordFilter {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'word_filters_pkey' })
  id: string;

  @ForeignKey(() => Room, { name: 'word_filters_room_id_fkey', onDelete: 'CASCADE' })
  @Column({ name: 'room_id', type: 'uuid', nullable: true })
  roomId: string | null;

  @Column({ type: 'varchar', length: 200 })
  pattern: string;

  @Column({ type: 'varchar', length: 8 })
  action: WordFilterAction;

  @ForeignKey(() => User, { name: 'word_filters_created_by_fkey', onDelete: 'SET NULL' })
  @Column({ name: 'created_by', type: 'uuid', nullable: true })
  createdBy: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;
}
