import {
  Check,
  Column,
  CreateDateColumn,
  Entity,
  ForeignKey,
  Index,
  PrimaryColumn,
  PrimaryGeneratedColumn,
  UpdateDateColumn,
} from 'typeorm';
import type { MemberRole, NotifyLevel } from '../common/wire';
import { User } from '../users/user.entity';

export const ROOM_KINDS = ['group', 'direct', 'conversation'] as const;
export type RoomKind = (typeof ROOM_KINDS)[number];
export const VISIBILITIES = ['public', 'private'] as const;
export type Visibility = (typeof VISIBILITIES)[number];

/** The schema of migrations/ (Chat, Moderation), exactly (test/schema-drift.e2e-spec.ts). */
@Entity('rooms')
@Check('rooms_kind_check', `kind IN ('group', 'direct', 'conversation')`)
@Check('rooms_visibility_check', `visibility IN ('public', 'private')`)
@Check('rooms_slow_mode_ms_check', `slow_mode_ms >= 0`)
// Group names are unique case-insensitively: `ON rooms (lower(name)) WHERE kind = 'group'`, an
// expression index TypeORM cannot declare (named so the schema diff leaves it alone).
@Index('rooms_group_name_key', { synchronize: false })
export class Room {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'rooms_pkey' })
  id: string;

  @Column({ type: 'varchar', length: 80 })
  name: string;

  @Column({ type: 'varchar', length: 1000, default: '' })
  description: string;

  @Column({ type: 'varchar', length: 200, default: '' })
  theme: string;

  @Column({ type: 'varchar', length: 16 })
  kind: RoomKind;

  @Column({ type: 'varchar', length: 16 })
  visibility: Visibility;

  /** Direct rooms: the two user ids, sorted, so the pair has exactly one room. */
  @Column({ name: 'direct_key', type: 'varchar', length: 80, nullable: true, unique: true })
  directKey: string | null;

  @ForeignKey(() => User, { name: 'rooms_created_by_fkey', onDelete: 'SET NULL' })
  @Column({ name: 'created_by', type: 'uuid', nullable: true })
  createdBy: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt: Date;

  /** Archived rooms are read-only; null while active. */
  @Column({ name: 'archived_at', type: 'timestamptz', nullable: true })
  archivedAt: Date | null;

  /** Minimum interval between one member's messages; 0 = off. */
  @Column({ name: 'slow_mode_ms', type: 'integer', default: 0 })
  slowModeMs: number;
}

export type { MemberRole, NotifyLevel };
export const NOTIFY_LEVELS = ['default', 'all', 'mentions', 'none'] as const;

@Entity('memberships')
@Check('memberships_role_check', `role IN ('owner', 'moderator', 'member')`)
@Check('memberships_notify_check', `notify IN ('default', 'all', 'mentions', 'none')`)
export class Membership {
  @ForeignKey(() => Room, { name: 'memberships_room_id_fkey', onDelete: 'CASCADE' })
  @PrimaryColumn({ name: 'room_id', type: 'uuid', primaryKeyConstraintName: 'memberships_pkey' })
  roomId: string;

  @Index('memberships_user_id_idx')
  @ForeignKey(() => User, { name: 'memberships_user_id_fkey', onDelete: 'CASCADE' })
  @PrimaryColumn({ name: 'user_id', type: 'uuid', primaryKeyConstraintName: 'memberships_pkey' })
  userId: string;

  @Column({ type: 'varchar', length: 16, default: 'member' })
  role: MemberRole;

  @CreateDateColumn({ name: 'joined_at', type: 'timestamptz' })
  joinedAt: Date;

  /** bigint: TypeORM hands it over as a string. */
  @Column({ name: 'last_read_message_id', type: 'bigint', default: 0 })
  lastReadMessageId: string;

  /** Muted while in the future ('infinity' until lifted); null: never muted. */
  @Column({ name: 'muted_until', type: 'timestamptz', nullable: true })
  mutedUntil: Date | null;

  @Column({ name: 'mute_reason', type: 'varchar', length: 500, default: '' })
  muteReason: string;

  /**
   * Notification level in this room (docs/architecture.md): `default` is `all` in direct rooms
   * and conversations, `mentions` elsewhere.
   */
  @Column({ type: 'varchar', length: 16, default: 'default' })
  notify: NotifyLevel;
}
