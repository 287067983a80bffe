import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Attachments (issue 18, docs/architecture.md § Attachments): one row per stored file, written
 * `pending` before a byte is stored, so a crash mid-upload leaves a row the cleanup job finds.
 * The foreign keys to rooms and messages are SET NULL, never CASCADE: a row names files, and
 * only the cleanup job may delete it (after the files). `messages.attachments` is what a message
 * shows, written in the send's transaction.
 */
export class Attachments1763780700000 implements MigrationInterface {
  name = 'Attachments1763780700000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE attachments (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        room_id uuid REFERENCES rooms(id) ON DELETE SET NULL,
        uploader_id uuid REFERENCES users(id) ON DELETE SET NULL,
        message_id bigint REFERENCES messages(id) ON DELETE SET NULL,
        state varchar(16) NOT NULL DEFAULT 'pending'
          CHECK (state IN ('pending', 'ready', 'deleting')),
        direct boolean NOT NULL DEFAULT false,
        name varchar(255) NOT NULL,
        size bigint NOT NULL DEFAULT 0,
        content_type varchar(127) NOT NULL DEFAULT 'application/octet-stream',
        sha256 varchar(64),
        width integer,
        height integer,
        storage_key varchar(255) NOT NULL,
        thumb_key varchar(255),
        expires_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now())`);
    await q.query(
      `CREATE INDEX attachments_due ON attachments (expires_at) WHERE expires_at IS NOT NULL`,
    );
    await q.query(`CREATE INDEX attachments_orphaned ON attachments (id) WHERE room_id IS NULL`);
    await q.query(
      `CREATE INDEX attachments_message ON attachments (message_id) WHERE message_id IS NOT NULL`,
    );
    await q.query(`CREATE INDEX attachments_uploader ON attachments (uploader_id)`);
    await q.query(`ALTER TABLE messages ADD COLUMN attachments jsonb NOT NULL DEFAULT '[]'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE messages DROP COLUMN attachments`);
    await q.query(`DROP TABLE attachments`);
  }
}
