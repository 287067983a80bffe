import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A persona reply whose server instance died mid-stream is ended by another instance and saved
 * with `finish_reason = 'interrupted'` (docs/personas.md, "When an instance dies").
 */
export class PersonaStreamInterrupted1763780750000 implements MigrationInterface {
  name = 'PersonaStreamInterrupted1763780750000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE messages DROP CONSTRAINT messages_finish_reason_check`);
    await q.query(`
      ALTER TABLE messages ADD CONSTRAINT messages_finish_reason_check
        CHECK (finish_reason IN ('stop', 'length', 'cancelled', 'timeout', 'error', 'interrupted'))`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(
      `UPDATE messages SET finish_reason = 'error' WHERE finish_reason = 'interrupted'`,
    );
    await q.query(`ALTER TABLE messages DROP CONSTRAINT messages_finish_reason_check`);
    await q.query(`
      ALTER TABLE messages ADD CONSTRAINT messages_finish_reason_check
        CHECK (finish_reason IN ('stop', 'length', 'cancelled', 'timeout', 'error'))`);
  }
}
