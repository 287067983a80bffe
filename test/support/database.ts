import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { EmbeddedPostgres } from '../../src/database/embedded-postgres';
import type { QueryRunner } from 'typeorm';
import type { PgEndpoint } from '../../src/database/database.module';

/**
 * Tests run on in-memory PGlite by default (no server needed) and on server PostgreSQL when
 * TEST_DATABASE_URL is set (CI's second run), each suite in a schema of its own.
 */
export const SERVER_URL = process.env.TEST_DATABASE_URL;

/** The migrated PGlite template built once by global-setup; keyed by the migrations' content. */
export function templatePath(): string {
  const dir = join(process.cwd(), 'migrations');
  const hash = createHash('sha256');
  for (const f of readdirSync(dir).sort()) hash.update(f).update(readFileSync(join(dir, f)));
  return join(tmpdir(), `parlor-pglite-template-${hash.digest('hex').slice(0, 16)}.tar`);
}

export async function testEndpoint(): Promise<PgEndpoint> {
  if (SERVER_URL) {
    const schema = `t_${randomBytes(6).toString('hex')}`;
    const client = new Client({ connectionString: SERVER_URL });
    await client.connect();
    await client.query(`CREATE SCHEMA ${schema}`);
    await client.end();
    return { url: SERVER_URL, options: `-c search_path=${schema}` };
  }
  const embedded = await EmbeddedPostgres.start({
    template: new Blob([readFileSync(templatePath())]),
    maxConnections: 20,
  });
  return { url: embedded.url, embedded };
}

/**
 * A fresh database on the server of TEST_DATABASE_URL, for suites that run the built server in
 * child processes (several instances on one database); `drop` removes it, connections and all.
 */
export async function scratchDatabase(
  prefix: string,
): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = async (sql: string) => {
    const pg = new Client({ connectionString: SERVER_URL });
    await pg.connect();
    try {
      await pg.query(sql);
    } finally {
      await pg.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(SERVER_URL!);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

/**
 * Until another session waits for a lock that `q`'s session holds. Polled from another
 * connection: inside `q`'s transaction pg_stat_activity is a snapshot taken at its first read.
 */
export async function waitUntilBlocking(q: QueryRunner): Promise<void> {
  const [{ pid }] = (await q.query(`SELECT pg_backend_pid() AS pid`)) as { pid: number }[];
  const deadline = Date.now() + 10_000;
  for (;;) {
    const rows = await q.connection.query<unknown[]>(
      `SELECT 1 FROM pg_stat_activity WHERE $1::int = ANY(pg_blocking_pids(pid))`,
      [pid],
    );
    if (rows.length > 0) return;
    if (Date.now() > deadline) throw new Error('no session waiting for this one');
    await new Promise((r) => setTimeout(r, 10));
  }
}
