import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Several personas in one room, with turn-taking (docs/personas.md, "Turn-taking"): each
 * persona's talkativeness (the `auto` policy's chance of speaking), and each room's policy and
 * loop-guard overrides. A room without a row has the `mention` policy and no cross-talk.
 */
export class PersonaTurns1763780800000 implements MigrationInterface {
  name = 'PersonaTurns1763780800000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE personas ADD COLUMN talkativeness real NOT NULL DEFAULT 0.5
        CHECK (talkativeness >= 0 AND talkativeness <= 1)`);
    await q.query(`
      CREATE TABLE room_persona_settings (
        room_id uuid PRIMARY KEY REFERENCES rooms(id) ON DELETE CASCADE,
        policy varchar(16) NOT NULL DEFAULT 'mention'
          CHECK (policy IN ('mention', 'round-robin', 'auto', 'director')),
        -- whether a persona's reply may call other personas (under the loop guards)
        cross_talk boolean NOT NULL DEFAULT false,
        -- auto: at most this many personas answer one message
        max_speakers integer NOT NULL DEFAULT 1 CHECK (max_speakers >= 1 AND max_speakers <= 10),
        -- auto: the room's seed of the random choices (with the message id: reproducible)
        seed integer NOT NULL DEFAULT 0,
        -- loop guards; null: the server's default (PERSONA_MAX_CONSECUTIVE_TURNS, …)
        max_consecutive_turns integer CHECK (max_consecutive_turns >= 1),
        chain_budget integer CHECK (chain_budget >= 0),
        cooldown_ms integer CHECK (cooldown_ms >= 0),
        updated_by uuid REFERENCES users(id) ON DELETE SET NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE room_persona_settings`);
    await q.query(`ALTER TABLE personas DROP COLUMN talkativeness`);
  }
}
