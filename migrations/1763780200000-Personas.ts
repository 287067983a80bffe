import { MigrationInterface, QueryRunner } from 'typeorm';

export class Personas1763780200000 implements MigrationInterface {
  name = 'Personas1763780200000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE personas (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        -- what people type after @ to call the persona; stored lower-case
        handle varchar(32) NOT NULL UNIQUE CHECK (handle ~ '^[a-z0-9_]{2,32}$'),
        display_name varchar(80) NOT NULL,
        system_prompt text NOT NULL DEFAULT '',
        style varchar(2000) NOT NULL DEFAULT '',
        -- null: the server-wide LLM_MODEL
        model varchar(200),
        temperature real NOT NULL DEFAULT 0.7 CHECK (temperature >= 0 AND temperature <= 2),
        max_tokens integer NOT NULL DEFAULT 512 CHECK (max_tokens > 0),
        enabled boolean NOT NULL DEFAULT true,
        avatar_url varchar(2000),
        created_by uuid REFERENCES users(id) ON DELETE SET NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE room_personas (
        room_id uuid NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        persona_id uuid NOT NULL REFERENCES personas(id) ON DELETE CASCADE,
        added_by uuid REFERENCES users(id) ON DELETE SET NULL,
        added_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (room_id, persona_id)
      )`);
    await q.query(`CREATE INDEX room_personas_persona_id_idx ON room_personas (persona_id)`);
    // How a persona reply ended. Null for every other message. 'cancelled', 'timeout' and 'error'
    // mark a reply that was cut short: the text is what the model produced before it stopped.
    // messages.persona_id has no foreign key on purpose: history keeps the author id of a
    // deleted persona rather than turning its replies into author-less messages.
    await q.query(`
      ALTER TABLE messages ADD COLUMN finish_reason varchar(16)
        CHECK (finish_reason IN ('stop', 'length', 'cancelled', 'timeout', 'error'))`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE messages DROP COLUMN finish_reason`);
    await q.query(`DROP TABLE room_personas`);
    await q.query(`DROP TABLE personas`);
  }
}
