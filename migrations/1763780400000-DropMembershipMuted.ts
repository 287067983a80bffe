import { MigrationInterface, QueryRunner } from 'typeorm';

/** `memberships.muted` was never read or written: dropped (moderation brings its own mute). */
export class DropMembershipMuted1763780400000 implements MigrationInterface {
  name = 'DropMembershipMuted1763780400000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE memberships DROP COLUMN muted`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE memberships ADD COLUMN muted boolean NOT NULL DEFAULT false`);
  }
}
