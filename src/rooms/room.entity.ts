import {
  Column,
  CreateDateColumn,
  Entity,
  PrimaryColumn,
  PrimaryGeneratedColumn,
  UpdateDateColumn,
} from 'typeorm';

export const ROOM_KINDS = ['group', 'direct', 'conversation'] as const;
export type RoomKind = (typeof ROOM_KINDS)[number];
export const VISIBILITIES = ['public', 'private'] as const;
export type Visibility = (typeof VISIBILITIES)[number];

@Entity('rooms')
export class Room {
  @PrimaryGeneratedColumn('uuid')
  id: string;

  @Column({ type: 'varchar' })
  name: string;

  @Column({ type: 'varchar', default: '' })
  description: string;

  @Column({ type: 'varchar', default: '' })
  theme: string;

  @Column({ type: 'varchar' })
  kind: RoomKind;

  @Column({ type: 'varchar' })
  visibility: Visibility;

  @Column({ name: 'direct_key', type: 'varchar', nullable: true })
  directKey: string | null;

  @Column({ name: 'created_by', type: 'uuid', nullable: true })
  createdBy: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt: Date;
}

export type MemberRole = 'owner' | 'member';

@Entity('memberships')
export class Membership {
  @PrimaryColumn({ name: 'room_id', type: 'uuid' })
  roomId: string;

  @PrimaryColumn({ name: 'user_id', type: 'uuid' })
  userId: string;

  @Column({ type: 'varchar', default: 'member' })
  role: MemberRole;

  @CreateDateColumn({ name: 'joined_at', type: 'timestamptz' })
  joinedAt: Date;

  /** bigint: TypeORM hands it over as a string. */
  @Column({ name: 'last_read_message_id', type: 'bigint', default: 0 })
  lastReadMessageId: string;
}
