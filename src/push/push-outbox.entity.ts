import {
  Column,
  CreateDateColumn,
  Entity,
  ForeignKey,
  Index,
  PrimaryGeneratedColumn,
  Unique,
} from 'typeorm';
import { Notification } from '../notifications/notification.entity';
import { Pusher } from './pusher.entity';

/**
 * One push waiting to be delivered to one pusher: the durable outbox the push worker polls.
 * UNIQUE (notification_id, pusher_id) deduplicates. Written by the PushStore (raw SQL); the
 * schema of migrations/1763780600000-Notifications.ts, exactly.
 */
@Entity('push_outbox')
@Unique('push_outbox_once', ['notificationId', 'pusherId'])
export class PushOutboxRow {
  /** bigserial. */
  @PrimaryGeneratedColumn('increment', {
    type: 'bigint',
    primaryKeyConstraintName: 'push_outbox_pkey',
  })
  id: string;

  @ForeignKey(() => Notification, {
    name: 'push_outbox_notification_id_fkey',
    onDelete: 'CASCADE',
  })
  @Column({ name: 'notification_id', type: 'bigint' })
  notificationId: string;

  @ForeignKey(() => Pusher, { name: 'push_outbox_pusher_id_fkey', onDelete: 'CASCADE' })
  @Column({ name: 'pusher_id', type: 'uuid' })
  pusherId: string;

  /** The body to POST, rendered at enqueue time. */
  @Column({ type: 'jsonb' })
  payload: Record<string, unknown>;

  @Column({ type: 'integer', default: 0 })
  attempts: number;

  @Index('push_outbox_due')
  @Column({ name: 'next_attempt_at', type: 'timestamptz', default: () => 'now()' })
  nextAttemptAt: Date;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  @Column({ name: 'last_error', type: 'varchar', length: 500, nullable: true })
  lastError: string | null;
}
