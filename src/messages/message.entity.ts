import {
  Check,
  Column,
  Entity,
  ForeignKey,
  Index,
  PrimaryColumn,
  PrimaryGeneratedColumn,
} from 'typeorm';
import { Room } from '../rooms/room.entity';
import { User } from '../users/user.entity';
import type { FinishReason } from './dto/message.dto';

export const MESSAGE_ROLES = ['user', 'assistant', 'system'] as const;
export type MessageRole = (typeof MESSAGE_ROLES)[number];

/**
 * Mapped for schema tooling; the message store reads and writes with SQL of its own because
 * the hot path needs one statement per send (lock, membership check, idempotent insert).
 * The schema of migrations/ (Chat, Personas, Moderation, PersonaStreamInterrupted, PersonaUsage), exactly (test/schema-drift.e2e-spec.ts).
 */
@Entity('messages')
@Check('messages_role_check', `role IN ('user', 'assistant', 'system')`)
@Check(
  'messages_finish_reason_check',
  `finish_reason IN ('stop', 'length', 'cancelled', 'timeout', 'error', 'interrupted')`,
)
@Index('messages_room_id_idx', ['roomId', 'id'])
@Index('messages_room_version_idx', ['roomId', 'version'])
@Index('messages_thread_idx', ['threadRootId', 'id'], { where: 'thread_root_id IS NOT NULL' })
@Index('messages_author_client_msg_key', ['authorId', 'clientMsgId'], {
  unique: true,
  where: 'client_msg_id IS NOT NULL',
})
export class Message {
  @PrimaryGeneratedColumn('identity', {
    type: 'bigint',
    generatedIdentity: 'BY DEFAULT',
    primaryKeyConstraintName: 'messages_pkey',
  })
  id: string;

  @ForeignKey(() => Room, { name: 'messages_room_id_fkey', onDelete: 'CASCADE' })
  @Column({ name: 'room_id', type: 'uuid' })
  roomId: string;

  @ForeignKey(() => User, { name: 'messages_author_id_fkey', onDelete: 'SET NULL' })
  @Column({ name: 'author_id', type: 'uuid', nullable: true })
  authorId: string | null;

  /** No foreign key on purpose: history keeps the id of a deleted persona. */
  @Column({ name: 'persona_id', type: 'uuid', nullable: true })
  personaId: string | null;

  @Column({ type: 'varchar', length: 16 })
  role: MessageRole;

  @Column({ type: 'text' })
  content: string;

  @ForeignKey(() => Message, { name: 'messages_reply_to_id_fkey', onDelete: 'SET NULL' })
  @Column({ name: 'reply_to_id', type: 'bigint', nullable: true })
  replyToId: string | null;

  @Column({ name: 'client_msg_id', type: 'varchar', length: 64, nullable: true })
  clientMsgId: string | null;

  /** From the one change-cursor sequence (created by the Chat migration, not by TypeORM). */
  @Column({ type: 'bigint', default: () => `nextval('message_versions')` })
  version: string;

  @Column({ name: 'created_at', type: 'timestamptz', default: () => 'now()' })
  createdAt: Date;

  @Column({ name: 'edited_at', type: 'timestamptz', nullable: true })
  editedAt: Date | null;

  @Column({ name: 'deleted_at', type: 'timestamptz', nullable: true })
  deletedAt: Date | null;

  /**
   * Full-text search (GIN with its pending list, merged by SearchIndexCleaner: SearchPendingList). The expression as PostgreSQL
   * prints it back, which is what the schema diff compares.
   */
  @Index('messages_search_idx', { type: 'gin' })
  @Column({
    type: 'tsvector',
    generatedType: 'STORED',
    asExpression: `to_tsvector('simple'::regconfig, content)`,
    nullable: true,
    select: false,
    insert: false,
    update: false,
  })
  search: string | null;

  /** Persona replies: how generation ended (null for user and system messages). */
  @Column({ name: 'finish_reason', type: 'varchar', length: 16, nullable: true })
  finishReason: FinishReason | null;

  /** Persona replies: tokens of the generation (the model's `usage`, else estimated). */
  @Column({ name: 'prompt_tokens', type: 'integer', nullable: true })
  promptTokens: number | null;

  @Column({ name: 'completion_tokens', type: 'integer', nullable: true })
  completionTokens: number | null;

  /** Persona replies: true when the tokens are the estimate (the model sent no `usage`). */
  @Column({ name: 'usage_estimated', type: 'boolean', nullable: true })
  usageEstimated: boolean | null;

  /** Removed by moderation: who (null if not, or the moderator's account is gone) and why. */
  @ForeignKey(() => User, { name: 'messages_removed_by_fkey', onDelete: 'SET NULL' })
  @Column({ name: 'removed_by', type: 'uuid', nullable: true })
  removedBy: string | null;

  @Column({ name: 'removal_reason', type: 'varchar', length: 500, nullable: true })
  removalReason: string | null;

  /** Mentions as parsed at send or edit (display): see StoredMention in message-store.ts. */
  @Column({ type: 'jsonb', default: () => `'[]'` })
  mentions: unknown[];

  /** A reply's thread: the root of its parent's thread (flat threads); null for roots. */
  @ForeignKey(() => Message, { name: 'messages_thread_root_id_fkey', onDelete: 'SET NULL' })
  @Column({ name: 'thread_root_id', type: 'bigint', nullable: true })
  threadRootId: string | null;

  /** Roots: replies in the thread, kept by the reply's own statement. */
  @Column({ name: 'reply_count', type: 'integer', default: 0 })
  replyCount: number;

  @Column({ name: 'last_reply_at', type: 'timestamptz', nullable: true })
  lastReplyAt: Date | null;

  /** Roots: the last 5 distinct repliers, most recent first. */
  @Column({ name: 'thread_participants', type: 'uuid', array: true, default: () => `'{}'` })
  threadParticipants: string[];

  /** What the message shows of its attachments (AttachmentDto[]), written in the send's transaction. */
  @Column({ type: 'jsonb', default: () => `'[]'` })
  attachments: unknown[];
}

@Entity('message_edits')
@Index('message_edits_message_id_idx', ['messageId', 'id'])
export class MessageEdit {
  @PrimaryGeneratedColumn('identity', {
    type: 'bigint',
    generatedIdentity: 'BY DEFAULT',
    primaryKeyConstraintName: 'message_edits_pkey',
  })
  id: string;

  @ForeignKey(() => Message, { name: 'message_edits_message_id_fkey', onDelete: 'CASCADE' })
  @Column({ name: 'message_id', type: 'bigint' })
  messageId: string;

  @Column({ type: 'text' })
  content: string;

  @Column({ name: 'edited_at', type: 'timestamptz', default: () => 'now()' })
  editedAt: Date;
}

@Entity('reactions')
export class Reaction {
  @ForeignKey(() => Message, { name: 'reactions_message_id_fkey', onDelete: 'CASCADE' })
  @PrimaryColumn({ name: 'message_id', type: 'bigint', primaryKeyConstraintName: 'reactions_pkey' })
  messageId: string;

  @PrimaryColumn({ type: 'varchar', length: 64, primaryKeyConstraintName: 'reactions_pkey' })
  emoji: string;

  @ForeignKey(() => User, { name: 'reactions_user_id_fkey', onDelete: 'CASCADE' })
  @PrimaryColumn({ name: 'user_id', type: 'uuid', primaryKeyConstraintName: 'reactions_pkey' })
  userId: string;

  @Column({ name: 'created_at', type: 'timestamptz', default: () => 'now()' })
  createdAt: Date;
}
