import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import type { AuditAction, AuditTargetType } from '../common/wire';

/**
 * One audit record. Append-only in the database itself (a trigger, audit_log_append_only,
 * refuses UPDATE, and DELETE outside the retention job; TypeORM does not model triggers). Ids of
 * actors and targets, not foreign keys: the log outlives what it names. Written by the AuditStore
 * (raw SQL); the schema of migrations/1763780500000-Moderation.ts, exactly.
 */
@Entity('audit_log')
@Index('audit_log_actor', ['actorId', 'id'])
@Index('audit_log_target', ['targetId', 'id'])
@Index('audit_log_action', ['action', 'id'])
export class AuditLogEntry {
  /** bigserial. */
  @PrimaryGeneratedColumn('increment', {
    type: 'bigint',
    primaryKeyConstraintName: 'audit_log_pkey',
  })
  id: string;

  @Index('audit_log_at')
  @Column({ type: 'timestamptz', default: () => 'now()' })
  at: Date;

  @Column({ name: 'actor_id', type: 'uuid', nullable: true })
  actorId: string | null;

  @Column({ type: 'varchar', length: 48 })
  action: AuditAction;

  @Column({ name: 'target_type', type: 'varchar', length: 16 })
  targetType: AuditTargetType;

  @Column({ name: 'target_id', type: 'varchar', length: 64 })
  targetId: string;

  @Column({ name: 'room_id', type: 'uuid', nullable: true })
  roomId: string | null;

  @Column({ type: 'varchar', length: 500, default: '' })
  reason: string;

  @Column({ type: 'jsonb', default: {} })
  details: Record<string, unknown>;

  /** host:pid of the instance that performed the action. */
  @Column({ type: 'varchar', length: 128 })
  instance: string;
}
