import {
  Check,
  Column,
  CreateDateColumn,
  Entity,
  Index,
  PrimaryGeneratedColumn,
  UpdateDateColumn,
} from 'typeorm';

export const ROLES = ['admin', 'user'] as const;
export type Role = (typeof ROLES)[number];

/**
 * The schema of migrations/ (Users, Moderation), exactly: `npm run migration:generate -- --check`
 * finds no difference (test/schema-drift.e2e-spec.ts). Index and constraint names are the ones
 * the migrations gave.
 */
@Entity('users')
@Check('users_role_check', `role IN ('admin', 'user')`)
// An expression index (lower(username)), which TypeORM cannot declare: named here so the schema
// diff leaves it alone; the Users migration creates it.
@Index('users_username_lower_key', { synchronize: false })
export class User {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'users_pkey' })
  id: string;

  /** Unique case-insensitively (index on lower(username)); shown as typed. */
  @Column({ type: 'varchar', length: 32 })
  username: string;

  /** Stored lower-cased, unique. */
  @Index('users_email_key', { unique: true })
  @Column({ type: 'varchar', length: 254 })
  email: string;

  @Column({ name: 'display_name', type: 'varchar', length: 64, nullable: true })
  displayName: string | null;

  @Column({ name: 'password_hash', type: 'varchar', length: 100, select: false })
  passwordHash: string;

  @Column({ type: 'varchar', length: 16, default: 'user' })
  role: Role;

  @Column({ type: 'boolean', default: false })
  disabled: boolean;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt: Date;

  /** Global suspension: in force while in the future ('infinity' until lifted). */
  @Column({ name: 'suspended_until', type: 'timestamptz', nullable: true })
  suspendedUntil: Date | null;

  @Column({ name: 'suspension_reason', type: 'varchar', length: 500, default: '' })
  suspensionReason: string;
}
