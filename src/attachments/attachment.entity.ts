import {
  Check,
  Column,
  CreateDateColumn,
  Entity,
  ForeignKey,
  Index,
  PrimaryGeneratedColumn,
} from 'typeorm';
import { Message } from '../messages/message.entity';
import { Room } from '../rooms/room.entity';
import { User } from '../users/user.entity';

export type AttachmentState = 'pending' | 'processing' | 'ready' | 'deleting';

/**
 * One stored file (and its thumbnail): written by AttachmentStore (raw SQL); the schema of
 * migrations/1763780700000-Attachments.ts (and AttachmentProcessing), exactly. The foreign keys are SET NULL, never
 * CASCADE: only the cleanup job deletes a row, after its files (docs/architecture.md).
 */
@Entity('attachments')
@Check('attachments_state_check', `state IN ('pending', 'processing', 'ready', 'deleting')`)
@Index('attachments_due', ['expiresAt'], { where: 'expires_at IS NOT NULL' })
@Index('attachments_orphaned', ['id'], { where: 'room_id IS NULL' })
@Index('attachments_message', ['messageId'], { where: 'message_id IS NOT NULL' })
export class Attachment {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'attachments_pkey' })
  id: string;

  @ForeignKey(() => Room, { name: 'attachments_room_id_fkey', onDelete: 'SET NULL' })
  @Column({ name: 'room_id', type: 'uuid', nullable: true })
  roomId: string | null;

  @Index('attachments_uploader')
  @ForeignKey(() => User, { name: 'attachments_uploader_id_fkey', onDelete: 'SET NULL' })
  @Column({ name: 'uploader_id', type: 'uuid', nullable: true })
  uploaderId: string | null;

  @ForeignKey(() => Message, { name: 'attachments_message_id_fkey', onDelete: 'SET NULL' })
  @Column({ name: 'message_id', type: 'bigint', nullable: true })
  messageId: string | null;

  @Column({ type: 'varchar', length: 16, default: 'pending' })
  state: AttachmentState;

  /** A direct (presigned) upload, confirmed by POST /attachments/:id/complete. */
  @Column({ type: 'boolean', default: false })
  direct: boolean;

  @Column({ type: 'varchar', length: 255 })
  name: string;

  @Column({ type: 'bigint', default: 0 })
  size: string;

  @Column({
    name: 'content_type',
    type: 'varchar',
    length: 127,
    default: 'application/octet-stream',
  })
  contentType: string;

  @Column({ type: 'varchar', length: 64, nullable: true })
  sha256: string | null;

  @Column({ type: 'integer', nullable: true })
  width: number | null;

  @Column({ type: 'integer', nullable: true })
  height: number | null;

  @Column({ name: 'storage_key', type: 'varchar', length: 255 })
  storageKey: string;

  @Column({ name: 'thumb_key', type: 'varchar', length: 255, nullable: true })
  thumbKey: string | null;

  @Column({ name: 'expires_at', type: 'timestamptz', nullable: true })
  expiresAt: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;
}
