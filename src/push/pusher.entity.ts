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
import { User } from '../users/user.entity';

/**
 * A device's push registration (the Matrix pusher model): where to POST (`url`, the operator's
 * gateway to FCM/APNs) and which device (`appId`, `pushKey`). A push key belongs to one user at
 * a time (UNIQUE (app_id, push_key)). It belongs to the login session that registered it
 * (`sessionId`): it is deleted when that session ends, and never used once the session is not
 * live. Written by the PushStore (raw SQL); the schema of
 * migrations/1763780600000-Notifications.ts and 1763781000000-PushersSession.ts, exactly.
 */
@Entity('pushers')
@Check('pushers_kind_check', `kind IN ('http')`)
@Unique('pushers_app_key', ['appId', 'pushKey'])
export class Pusher {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'pushers_pkey' })
  id: string;

  @Index('pushers_user')
  @ForeignKey(() => User, { name: 'pushers_user_id_fkey', onDelete: 'CASCADE' })
  @Column({ name: 'user_id', type: 'uuid' })
  userId: string;

  @Column({ type: 'varchar', length: 8 })
  kind: 'http';

  @Column({ type: 'varchar', length: 2048 })
  url: string;

  @Column({ name: 'app_id', type: 'varchar', length: 128 })
  appId: string;

  @Column({ name: 'push_key', type: 'varchar', length: 512 })
  pushKey: string;

  @Column({ name: 'device_name', type: 'varchar', length: 128, default: '' })
  deviceName: string;

  @Column({ type: 'varchar', length: 16, default: 'en' })
  lang: string;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  /**
   * The session (`sessions.id`) that registered it. A plain column: sessions are marked revoked,
   * never deleted. NULL: registered before sessions were recorded (legacy, treated as live).
   */
  @Index('pushers_session')
  @Column({ name: 'session_id', type: 'uuid', nullable: true })
  sessionId: string | null;
}
