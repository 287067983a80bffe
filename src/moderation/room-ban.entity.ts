import { Column, CreateDateColumn, Entity, ForeignKey, Index, PrimaryColumn } from 'typeorm';
import { Room } from '../rooms/room.entity';
import { User } from '../users/user.entity';

/**
 * A ban from a room: a row of its own, because it outlives the membership it removes. In force
 * while `until` is in the future ('infinity' until lifted). Written by the ModerationStore (raw
 * SQL); the schema of migrations/1763780500000-Moderation.ts, exactly.
 */
@Entity('room_bans')
export class RoomBan {
  @ForeignKey(() => Room, { name: 'room_bans_room_id_fkey', onDelete: 'CASCADE' })
  @PrimaryColumn({ name: 'room_id', type: 'uuid', primaryKeyConstraintName: 'room_bans_pkey' })
  roomId: string;

  @Index('room_bans_user')
  @ForeignKey(() => User, { name: 'room_bans_user_id_fkey', onDelete: 'CASCADE' })
  @PrimaryColumn({ name: 'user_id', type: 'uuid', primaryKeyConstraintName: 'room_bans_pkey' })
  userId: string;

  @Column({ type: 'timestamptz', default: () => `'infinity'` })
  until: Date;

  @Column({ type: 'varchar', length: 500, default: '' })
  reason: string;

  @ForeignKey(() => User, { name: 'room_bans_banned_by_fkey', onDelete: 'SET NULL' })
  @Column({ name: 'banned_by', type: 'uuid', nullable: true })
  bannedBy: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;
}
