import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Moderation and audit (issue 14), in one migration so the schema is designed once:
 * - room moderators (a membership role), mutes (on the membership), bans (their own table:
 *   a ban outlives the membership it removes), archive and slow mode (on the room);
 * - global suspension (on the user: distinct from `disabled`, it has an end and a reason);
 * - removal by moderation (who and why, on the message tombstone);
 * - word filters (global when room_id is null), reports, and the append-only audit log.
 * "Until lifted" is stored as 'infinity', so every check is one comparison with now().
 */
export class Moderation1763780500000 implements MigrationInterface {
  name = 'Moderation1763780500000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE memberships DROP CONSTRAINT IF EXISTS memberships_role_check`);
    await q.query(`ALTER TABLE memberships
      ADD CONSTRAINT memberships_role_check CHECK (role IN ('owner', 'moderator', 'member')),
      ADD COLUMN muted_until timestamptz,
      ADD COLUMN mute_reason varchar(500) NOT NULL DEFAULT ''`);
    await q.query(`ALTER TABLE rooms
      ADD COLUMN archived_at timestamptz,
      ADD COLUMN slow_mode_ms integer NOT NULL DEFAULT 0 CHECK (slow_mode_ms >= 0)`);
    await q.query(`ALTER TABLE users
      ADD COLUMN suspended_until timestamptz,
      ADD COLUMN suspension_reason varchar(500) NOT NULL DEFAULT ''`);
    await q.query(`ALTER TABLE messages
      ADD COLUMN removed_by uuid REFERENCES users(id) ON DELETE SET NULL,
      ADD COLUMN removal_reason varchar(500)`);
    await q.query(`CREATE TABLE room_bans (
        room_id uuid NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        until timestamptz NOT NULL DEFAULT 'infinity',
        reason varchar(500) NOT NULL DEFAULT '',
        banned_by uuid REFERENCES users(id) ON DELETE SET NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (room_id, user_id))`);
    await q.query(`CREATE INDEX room_bans_user ON room_bans (user_id)`);
    await q.query(`CREATE TABLE word_filters (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        room_id uuid REFERENCES rooms(id) ON DELETE CASCADE,
        pattern varchar(200) NOT NULL,
        action varchar(8) NOT NULL CHECK (action IN ('block', 'mask')),
        created_by uuid REFERENCES users(id) ON DELETE SET NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT word_filters_room_pattern UNIQUE NULLS NOT DISTINCT (room_id, pattern))`);
    await q.query(`CREATE TABLE reports (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        message_id bigint NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        room_id uuid NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        reporter_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        category varchar(16) NOT NULL
          CHECK (category IN ('spam', 'abuse', 'harassment', 'illegal', 'other')),
        text varchar(1000) NOT NULL DEFAULT '',
        status varchar(16) NOT NULL DEFAULT 'open'
          CHECK (status IN ('open', 'resolved', 'dismissed')),
        action varchar(16) CHECK (action IN ('delete', 'mute', 'ban', 'none')),
        resolution_note varchar(500) NOT NULL DEFAULT '',
        resolved_by uuid REFERENCES users(id) ON DELETE SET NULL,
        resolved_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT reports_once_per_reporter UNIQUE (message_id, reporter_id))`);
    await q.query(
      `CREATE INDEX reports_room_queue ON reports (room_id, status, created_at DESC, id)`,
    );
    await q.query(`CREATE INDEX reports_queue ON reports (status, created_at DESC, id)`);
    // The audit log keeps ids of actors and targets, not foreign keys: it outlives what it names.
    await q.query(`CREATE TABLE audit_log (
        id bigserial PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT now(),
        actor_id uuid,
        action varchar(48) NOT NULL,
        target_type varchar(16) NOT NULL,
        target_id varchar(64) NOT NULL,
        room_id uuid,
        reason varchar(500) NOT NULL DEFAULT '',
        details jsonb NOT NULL DEFAULT '{}',
        instance varchar(128) NOT NULL)`);
    await q.query(`CREATE INDEX audit_log_actor ON audit_log (actor_id, id)`);
    await q.query(`CREATE INDEX audit_log_target ON audit_log (target_id, id)`);
    await q.query(`CREATE INDEX audit_log_action ON audit_log (action, id)`);
    await q.query(`CREATE INDEX audit_log_at ON audit_log (at)`);
    // Append-only in the database itself: no UPDATE ever; DELETE only by the retention job,
    // which sets parlor.audit_retention for its own transaction.
    await q.query(`CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'DELETE' AND current_setting('parlor.audit_retention', true) = 'on' THEN
          RETURN OLD;
        END IF;
        RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
      END $$`);
    await q.query(`CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
      FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE audit_log`);
    await q.query(`DROP FUNCTION audit_log_append_only()`);
    await q.query(`DROP TABLE reports`);
    await q.query(`DROP TABLE word_filters`);
    await q.query(`DROP TABLE room_bans`);
    await q.query(`ALTER TABLE messages DROP COLUMN removed_by, DROP COLUMN removal_reason`);
    await q.query(`ALTER TABLE users DROP COLUMN suspended_until, DROP COLUMN suspension_reason`);
    await q.query(`ALTER TABLE rooms DROP COLUMN archived_at, DROP COLUMN slow_mode_ms`);
    await q.query(`UPDATE memberships SET role = 'member' WHERE role = 'moderator'`);
    await q.query(`ALTER TABLE memberships DROP CONSTRAINT memberships_role_check,
      DROP COLUMN muted_until, DROP COLUMN mute_reason`);
    await q.query(`ALTER TABLE memberships
      ADD CONSTRAINT memberships_role_check CHECK (role IN ('owner', 'member'))`);
  }
}
