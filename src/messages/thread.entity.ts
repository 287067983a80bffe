import { Column, Entity, ForeignKey, Index, PrimaryColumn } from 'typeorm';
import { Room } from '../rooms/room.entity';
import { User } from '../users/user.entity';
import { Message } from './message.entity';

/**
 * One row per member a message mentions (explicitly, or through `@here`/`@room`), written by
 * the send statement and rewritten by edits: unread-mention counts and notifications read it.
 * The schema of migrations/1763780600000-Notifications.ts, exactly.
 */
@Entity('message_mentions')
@Index('message_mentions_user_room', ['userId', 'roomId', 'messageId'])
export class MessageMention {
  @ForeignKey(() => Message, { name: 'message_mentions_message_id_fkey', onDelete: 'CASCADE' })
  @PrimaryColumn({
    name: 'message_id',
    type: 'bigint',
    primaryKeyConstraintName: 'message_mentions_pkey',
  })
  messageId: string;

  @ForeignKey(() => User, { name: 'message_mentions_user_id_fkey', onDelete: 'CASCADE' })
  @PrimaryColumn({
    name: 'user_id',
    type: 'uuid',
    primaryKeyConstraintName: 'message_mentions_pkey',
  })
  userId: string;

  @ForeignKey(() => Room, { name: 'message_mentions_room_id_fkey', onDelete: 'CASCADE' })
  @Column({ name: 'room_id', type: 'uuid' })
  roomId: string;
}

/**
 * Who follows a thread (by its root). Written automatically by the send statement for the
 * root's author, repliers and users mentioned in replies (`ON CONFLICT DO NOTHING`), and by
 * follow/unfollow; `following = false` is an explicit unfollow that automatic follows respect.
 */
@Entity('thread_follows')
@Index('thread_follows_user', ['userId'])
export class ThreadFollow {
  @ForeignKey(() => Message, { name: 'thread_follows_root_id_fkey', onDelete: 'CASCADE' })
  @PrimaryColumn({
    name: 'root_id',
    type: 'bigint',
    primaryKeyConstraintName: 'thread_follows_pkey',
  })
  rootId: string;

  @ForeignKey(() => User, { name: 'thread_follows_user_id_fkey', onDelete: 'CASCADE' })
  @PrimaryColumn({ name: 'user_id', type: 'uuid', primaryKeyConstraintName: 'thread_follows_pkey' })
  userId: string;

  @Column({ type: 'boolean', default: true })
  following: boolean;

  @Column({ name: 'created_at', type: 'timestamptz', default: () => 'now()' })
  createdAt: Date;
}
