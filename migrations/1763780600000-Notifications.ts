import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Mentions, threads, notifications and push (issue 15), designed once:
 * - mentions: structured on the message (`mentions`, for display) and one row per mentioned
 *   member (`message_mentions`, for unread-mention counts and notifications);
 * - threads: a reply belongs to its parent's thread (`thread_root_id`, flat as in Slack); the
 *   root carries its counters, updated in the reply's statement; `thread_follows` holds who
 *   follows (following = false is an explicit unfollow, which automatic follows respect);
 * - notification level per membership; notifications, one per (recipient, message);
 * - push: pushers (the Matrix model), per-user push settings, and the durable outbox.
 */
export class Notifications1763780600000 implements MigrationInterface {
  name = 'Notifications1763780600000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE messages
      ADD COLUMN mentions jsonb NOT NULL DEFAULT '[]',
      ADD COLUMN thread_root_id bigint REFERENCES messages(id) ON DELETE SET NULL,
      ADD COLUMN reply_count integer NOT NULL DEFAULT 0,
      ADD COLUMN last_reply_at timestamptz,
      ADD COLUMN thread_participants uuid[] NOT NULL DEFAULT '{}'`);
    await q.query(
      `CREATE INDEX messages_thread_idx ON messages (thread_root_id, id) WHERE thread_root_id IS NOT NULL`,
    );
    await q.query(`CREATE TABLE message_mentions (
        message_id bigint NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        room_id uuid NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        PRIMARY KEY (message_id, user_id))`);
    await q.query(
      `CREATE INDEX message_mentions_user_room ON message_mentions (user_id, room_id, message_id)`,
    );
    await q.query(`CREATE TABLE thread_follows (
        root_id bigint NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        following boolean NOT NULL DEFAULT true,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (root_id, user_id))`);
    await q.query(`CREATE INDEX thread_follows_user ON thread_follows (user_id)`);
    await q.query(`ALTER TABLE memberships
      ADD COLUMN notify varchar(16) NOT NULL DEFAULT 'default'
        CHECK (notify IN ('default', 'all', 'mentions', 'none'))`);
    await q.query(`CREATE TABLE notifications (
        id bigserial PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        room_id uuid NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        message_id bigint NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        kind varchar(16) NOT NULL CHECK (kind IN ('mention', 'direct', 'thread', 'message')),
        actor_id uuid REFERENCES users(id) ON DELETE SET NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        read_at timestamptz,
        CONSTRAINT notifications_once UNIQUE (user_id, message_id))`);
    await q.query(`CREATE INDEX notifications_user ON notifications (user_id, id)`);
    await q.query(
      `CREATE INDEX notifications_user_unread ON notifications (user_id, room_id, id) WHERE read_at IS NULL`,
    );
    await q.query(`CREATE TABLE pushers (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        kind varchar(8) NOT NULL CHECK (kind IN ('http')),
        url varchar(2048) NOT NULL,
        app_id varchar(128) NOT NULL,
        push_key varchar(512) NOT NULL,
        device_name varchar(128) NOT NULL DEFAULT '',
        lang varchar(16) NOT NULL DEFAULT 'en',
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pushers_app_key UNIQUE (app_id, push_key))`);
    await q.query(`CREATE INDEX pushers_user ON pushers (user_id)`);
    await q.query(`CREATE TABLE push_settings (
        user_id uuid PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        hide_content boolean NOT NULL DEFAULT false)`);
    await q.query(`CREATE TABLE push_outbox (
        id bigserial PRIMARY KEY,
        notification_id bigint NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
        pusher_id uuid NOT NULL REFERENCES pushers(id) ON DELETE CASCADE,
        payload jsonb NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        created_at timestamptz NOT NULL DEFAULT now(),
        last_error varchar(500),
        CONSTRAINT push_outbox_once UNIQUE (notification_id, pusher_id))`);
    await q.query(`CREATE INDEX push_outbox_due ON push_outbox (next_attempt_at)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE push_outbox`);
    await q.query(`DROP TABLE push_settings`);
    await q.query(`DROP TABLE pushers`);
    await q.query(`DROP TABLE notifications`);
    await q.query(`ALTER TABLE memberships DROP COLUMN notify`);
    await q.query(`DROP TABLE thread_follows`);
    await q.query(`DROP TABLE message_mentions`);
    await q.query(`DROP INDEX messages_thread_idx`);
    await q.query(`ALTER TABLE messages DROP COLUMN mentions, DROP COLUMN thread_root_id,
      DROP COLUMN reply_count, DROP COLUMN last_reply_at, DROP COLUMN thread_participants`);
  }
}
