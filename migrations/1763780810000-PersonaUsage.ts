import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Persona budgets and cost (issue 16, docs/personas.md "Usage and budgets"): the tokens of each
 * persona reply on its message, the daily sums per (UTC day, user who called the persona, room,
 * persona), and a persona's own daily token budget.
 */
export class PersonaUsage1763780810000 implements MigrationInterface {
  name = 'PersonaUsage1763780810000';

  async up(q: QueryRunner): Promise<void> {
    // Nullable, no default: adding them rewrites nothing, and only persona replies set them.
    await q.query(`
      ALTER TABLE messages
        ADD COLUMN prompt_tokens integer,
        ADD COLUMN completion_tokens integer,
        ADD COLUMN usage_estimated boolean`);
    await q.query(`
      ALTER TABLE personas ADD COLUMN daily_token_budget integer,
        ADD CONSTRAINT personas_daily_token_budget_check CHECK (daily_token_budget >= 0)`);
    // No foreign keys on purpose: what was spent outlives a deleted room, user or persona.
    await q.query(`
      CREATE TABLE persona_usage_daily (
        day date NOT NULL,
        user_id uuid NOT NULL,
        room_id uuid NOT NULL,
        persona_id uuid NOT NULL,
        generations integer NOT NULL DEFAULT 0,
        prompt_tokens bigint NOT NULL DEFAULT 0,
        completion_tokens bigint NOT NULL DEFAULT 0,
        CONSTRAINT persona_usage_daily_pkey PRIMARY KEY (day, user_id, room_id, persona_id)
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE persona_usage_daily`);
    await q.query(`ALTER TABLE personas DROP COLUMN daily_token_budget`);
    await q.query(`
      ALTER TABLE messages
        DROP COLUMN prompt_tokens,
        DROP COLUMN completion_tokens,
        DROP COLUMN usage_estimated`);
  }
}
