import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Persona memory (docs/personas.md, "Memory"): a persona's optional stop list, and the rolling
 * summary of a room's (or conversation's) older history, one per room and persona.
 */
export class PersonaMemory1763780820000 implements MigrationInterface {
  name = 'PersonaMemory1763780820000';

  async up(q: QueryRunner): Promise<void> {
    // Sequences where the model stops writing (OpenAI's `stop`: 4 at most; lengths are checked by
    // the API, 1–32 characters each).
    await q.query(`ALTER TABLE personas ADD COLUMN stop text[] NOT NULL DEFAULT '{}'`);
    await q.query(
      `ALTER TABLE personas ADD CONSTRAINT personas_stop_check CHECK (cardinality(stop) <= 4)`,
    );
    // through_message_id: the newest message folded into the summary (no foreign key: messages
    // come and go, the summary keeps what it read).
    await q.query(`
      CREATE TABLE persona_summaries (
        room_id uuid NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        persona_id uuid NOT NULL REFERENCES personas(id) ON DELETE CASCADE,
        summary text NOT NULL,
        through_message_id bigint NOT NULL,
        folded_messages integer NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (room_id, persona_id)
      )`);
    await q.query(
      `CREATE INDEX persona_summaries_persona_id_idx ON persona_summaries (persona_id)`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE persona_summaries`);
    await q.query(`ALTER TABLE personas DROP CONSTRAINT personas_stop_check`);
    await q.query(`ALTER TABLE personas DROP COLUMN stop`);
  }
}
