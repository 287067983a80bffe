import { Column, Entity, PrimaryColumn, PrimaryGeneratedColumn } from 'typeorm';
import type { FinishReason } from './dto/message.dto';

export const MESSAGE_ROLES = ['user', 'assistant', 'system'] as const;
export type MessageRole = (typeof MESSAGE_ROLES)[number];

/**
 * Mapped for schema tooling; the message store reads and writes with SQL of its own because
 * the hot path needs one statement per send (lock, membership check, idempotent insert).
 */
@Entity('messages')
export class Message {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id: string;
  @Column({ name: 'room_id', type: 'uuid' })
  roomId: string;
  @Column({ name: 'author_id', type: 'uuid', nullable: true })
  authorId: string | null;
  @Column({ name: 'persona_id', type: 'uuid', nullable: true })
  personaId: string | null;
  @Column({ type: 'varchar' })
  role: MessageRole;
  @Column({ type: 'text' })
  content: string;
  @Column({ name: 'reply_to_id', type: 'bigint', nullable: true })
  replyToId: string | null;
  @Column({ name: 'client_msg_id', type: 'varchar', nullable: true })
  clientMsgId: string | null;
  @Column({ type: 'bigint' })
  version: string;
  @Column({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;
  @Column({ name: 'edited_at', type: 'timestamptz', nullable: true })
  editedAt: Date | null;
  @Column({ name: 'deleted_at', type: 'timestamptz', nullable: true })
  deletedAt: Date | null;
  /** Persona replies: how generation ended (null for user and system messages). */
  @Column({ name: 'finish_reason', type: 'varchar', length: 16, nullable: true })
  finishReason: FinishReason | null;
}

@Entity('message_edits')
export class MessageEdit {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id: string;
  @Column({ name: 'message_id', type: 'bigint' })
  messageId: string;
  @Column({ type: 'text' })
  content: string;
  @Column({ name: 'edited_at', type: 'timestamptz' })
  editedAt: Date;
}

@Entity('reactions')
export class Reaction {
  @PrimaryColumn({ name: 'message_id', type: 'bigint' })
  messageId: string;
  @PrimaryColumn({ type: 'varchar' })
  emoji: string;
  @PrimaryColumn({ name: 'user_id', type: 'uuid' })
  userId: string;
  @Column({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;
}
