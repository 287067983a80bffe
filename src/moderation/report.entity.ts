import {
  Check,
  Column,
  CreateDateColumn,
  Entity,
  ForeignKey,
  Index,
  PrimaryGeneratedColumn,
  Unique,
} from 'typeorm';
import { Message } from '../messages/message.entity';
import { Room } from '../rooms/room.entity';
import { User } from '../users/user.entity';

export const REPORT_CATEGORIES = ['spam', 'abuse', 'harassment', 'illegal', 'other'] as const;
export type ReportCategory = (typeof REPORT_CATEGORIES)[number];
export const REPORT_STATUSES = ['open', 'resolved', 'dismissed'] as const;
export type ReportStatus = (typeof REPORT_STATUSES)[number];
export const REPORT_ACTIONS = ['delete', 'mute', 'ban', 'none'] as const;
export type ReportAction = (typeof REPORT_ACTIONS)[number];

/**
 * A member's report of a message, once per reporter and message. Written by the ModerationStore
 * (raw SQL); the schema of migrations/1763780500000-Moderation.ts, exactly, except that the two
 * queue indexes sort `created_at DESC` there (TypeORM declares no column order; the schema diff
 * compares index names and columns).
 */
@Entity('reports')
@Check('reports_category_check', `category IN ('spam', 'abuse', 'harassment', 'illegal', 'other')`)
@Check('reports_status_check', `status IN ('open', 'resolved', 'dismissed')`)
@Check('reports_action_check', `action IN ('delete', 'mute', 'ban', 'none')`)
@Unique('reports_once_per_reporter', ['messageId', 'reporterId'])
@Index('reports_room_queue', ['roomId', 'status', 'createdAt', 'id'])
@Index('reports_queue', ['status', 'createdAt', 'id'])
export class Report {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'reports_pkey' })
  id: string;

  @ForeignKey(() => Message, { name: 'reports_message_id_fkey', onDelete: 'CASCADE' })
  @Column({ name: 'message_id', type: 'bigint' })
  messageId: string;

  @ForeignKey(() => Room, { name: 'reports_room_id_fkey', onDelete: 'CASCADE' })
  @Column({ name: 'room_id', type: 'uuid' })
  roomId: string;

  @ForeignKey(() => User, { name: 'reports_reporter_id_fkey', onDelete: 'CASCADE' })
  @Column({ name: 'reporter_id', type: 'uuid' })
  reporterId: string;

  @Column({ type: 'varchar', length: 16 })
  category: ReportCategory;

  @Column({ type: 'varchar', length: 1000, default: '' })
  text: string;

  @Column({ type: 'varchar', length: 16, default: 'open' })
  status: ReportStatus;

  /** What resolving it did; null while open. */
  @Column({ type: 'varchar', length: 16, nullable: true })
  action: ReportAction | null;

  @Column({ name: 'resolution_note', type: 'varchar', length: 500, default: '' })
  resolutionNote: string;

  @ForeignKey(() => User, { name: 'reports_resolved_by_fkey', onDelete: 'SET NULL' })
  @Column({ name: 'resolved_by', type: 'uuid', nullable: true })
  resolvedBy: string | null;

  @Column({ name: 'resolved_at', type: 'timestamptz', nullable: true })
  resolvedAt: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;
}
