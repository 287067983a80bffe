import { Column, Entity, ForeignKey, PrimaryColumn } from 'typeorm';
import { User } from '../users/user.entity';

/**
 * A user's push preferences (no row: the defaults). Written by the PushStore (raw SQL); the
 * schema of migrations/1763780600000-Notifications.ts, exactly.
 */
@Entity('push_settings')
export class PushSettings {
  @ForeignKey(() => User, { name: 'push_settings_user_id_fkey', onDelete: 'CASCADE' })
  @PrimaryColumn({ name: 'user_id', type: 'uuid', primaryKeyConstraintName: 'push_settings_pkey' })
  userId: string;

  /** Pushes carry no message text (room and sender only). */
  @Column({ name: 'hide_content', type: 'boolean', default: false })
  hideContent: boolean;
}
