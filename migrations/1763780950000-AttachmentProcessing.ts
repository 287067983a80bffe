import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A direct upload being completed is 'processing': the one completion that moved it there
 * copies, checks and finishes it, so two concurrent completions cannot act on one upload
 * (the loser would otherwise discard the winner's finished file).
 */
export class AttachmentProcessing1763780950000 implements MigrationInterface {
  name = 'AttachmentProcessing1763780950000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE attachments DROP CONSTRAINT attachments_state_check`);
    await q.query(
      `ALTER TABLE attachments ADD CONSTRAINT attachments_state_check
         CHECK (state IN ('pending', 'processing', 'ready', 'deleting'))`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`UPDATE attachments SET state = 'pending' WHERE state = 'processing'`);
    await q.query(`ALTER TABLE attachments DROP CONSTRAINT attachments_state_check`);
    await q.query(
      `ALTER TABLE attachments ADD CONSTRAINT attachments_state_check
         CHECK (state IN ('pending', 'ready', 'deleting'))`,
    );
  }
}
