import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A pusher belongs to the login session that registered it (`session_id`): when that session
 * ends (logout, a password change ending the other sessions, a disable or suspension), its
 * pushers go, and the worker sends nothing through a pusher whose session is no longer live.
 * A plain column, not a foreign key: sessions are never deleted, only marked revoked (a
 * user's deletion takes both tables with it). Pushers registered before this migration keep
 * `session_id` NULL and are treated as live (legacy): deleting them here would take users'
 * devices away silently; they go with a disable, a suspension, or when the user deletes them.
 */
export class PushersSession1763781000000 implements MigrationInterface {
  name = 'PushersSession1763781000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE pushers ADD COLUMN session_id uuid`);
    await q.query(`CREATE INDEX pushers_session ON pushers (session_id)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX pushers_session`);
    await q.query(`ALTER TABLE pushers DROP COLUMN session_id`);
  }
}
