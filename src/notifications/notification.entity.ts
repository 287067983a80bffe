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
import type { NotificationKind } from '../common/wire';
import { Message } from '../messages/message.entity';
import { Room } from '../rooms/room.entity';
import { User } from '../users/user.entity';

export const NOTIFICATION_KINDS = ['mention', 'direct', 'thread', 'message'] as const;

/**
 * One notification per (recipient, message), written by NotificationStore (raw SQL); the
 * schema of migrations/1763780600000-Notifications.ts, exactly (test/schema-drift.e2e-spec.ts).
 */
@Entity('notifications')
@Check('notifications_kind_check', `kind IN ('mention', 'direct', 'thread', 'message')`)
@Unique('notifications_once', ['userId', 'messageId'])
@Index('notifications_user', ['userId', 'id'])
@Index('notifications_user_unread', ['userId', 'roomId', 'id'], { where: 'read_at IS NULL' })
export class Notification {
  /** bigint: TypeORM hands it over as a string. */
  @PrimaryGeneratedColumn('increment', {
    type: 'bigint',
    primaryKeyConstraintName: 'notifications_pkey',
  })
  id: string;

  @ForeignKey(() => User, { name: 'notifications_user_id_fkey', onDelete: 'CASCADE' })
  @Column({ name: 'user_id', type: 'uuid' })
  userId: string;

  @ForeignKey(() => Room, { name: 'notifications_room_id_fkey', onDelete: 'CASCADE' })
  @Column({ name: 'room_id', type: 'uuid' })
  roomId: string;

  @ForeignKey(() => Message, { name: 'notifications_message_id_fkey', onDelete: 'CASCADE' })
  @Column({ name: 'message_id', type: 'bigint' })
  messageId: string;

  @Column({ type: 'varchar', length: 16 })
  kind: NotificationKind;

  /** The user who wrote the message; null for persona messages (and deleted accounts). */
  @ForeignKey(() => User, { name: 'notifications_actor_id_fkey', onDelete: 'SET NULL' })
  @Column({ name: 'actor_id', type: 'uuid', nullable: true })
  actorId: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  @Column({ name: 'read_at', type: 'timestamptz', nullable: true })
  readAt: Date | null;
}
