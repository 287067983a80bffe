import { createHash } from 'node:crypto';
import type { Pool, PoolClient } from 'pg';
import type { DataSource } from 'typeorm';
import { PG, pgCode } from '../common/pg-errors';

/**
 * A statement run as a named (prepared) statement: PostgreSQL parses and plans it once per
 * session instead of at every execution. The name carries a hash of the text, so one name
 * never stands for two texts (two builds, or two pools, on one embedded database).
 */
export interface NamedStatement {
  readonly name: string;
  readonly text: string;
}

export function namedStatement(label: string, text: string): NamedStatement {
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 12);
  return { name: `${label}_${hash}`, text };
}

/**
 * pg's record of the named statements a connection has parsed (`Connection#parsedStatements`,
 * name → text): pg skips the Parse of a name it finds there. Undefined if pg ever drops it.
 */
function parsedStatements(client: PoolClient): Record<string, string> | undefined {
  const parsed = (client as unknown as { connection?: { parsedStatements?: unknown } }).connection
    ?.parsedStatements;
  return parsed && typeof parsed === 'object' ? (parsed as Record<string, string>) : undefined;
}

/**
 * Runs named statements on the pool TypeORM holds: straight on a pooled pg client (none of
 * TypeORM's per-query work), released unharmed when a statement fails (a refused value is the
 * statement's failure, not the connection's: pg-pool's own `pool.query` would throw the
 * connection away with it).
 *
 * `sharedSession`: the embedded database (PGlite behind pglite-socket) is ONE PostgreSQL
 * session, whatever the number of socket connections. A named statement outlives the
 * connection that prepared it, and every connection sees the others'. pg keeps its record per
 * connection, so a new connection (the pool replaced one after an error or an idle timeout, or
 * a second app on the same database) would Parse a name the session already holds and fail
 * with 42P05 on every later execution. Here such a connection adopts the session's statement
 * (the name pins the text), and one that finds its statement gone prepares it again.
 */
export class PreparedStatements {
  constructor(
    private readonly db: DataSource,
    private readonly sharedSession: boolean,
  ) {}

  async query<R extends object>(stmt: NamedStatement, values: unknown[]): Promise<R[]> {
    const pool = (this.db.driver as unknown as { master?: Pool }).master;
    if (!pool) return this.db.query<R[]>(stmt.text, values);
    const client = await pool.connect();
    let discard: Error | undefined;
    try {
      return await this.run<R>(client, stmt, values);
    } catch (err) {
      // "cached plan must not change result type": a table changed under the statement (a
      // migration by another instance). A new connection prepares it again.
      if (!this.sharedSession && pgCode(err) === PG.FEATURE_NOT_SUPPORTED) discard = err as Error;
      throw err;
    } finally {
      client.release(discard);
    }
  }

  private async run<R extends object>(
    client: PoolClient,
    stmt: NamedStatement,
    values: unknown[],
    healed = false,
  ): Promise<R[]> {
    const parsed = this.sharedSession ? parsedStatements(client) : undefined;
    if (this.sharedSession && !parsed) return (await client.query<R>(stmt.text, values)).rows;
    try {
      return (await client.query<R>({ name: stmt.name, text: stmt.text, values })).rows;
    } catch (err) {
      if (!parsed || healed) throw err;
      const code = pgCode(err);
      if (code === PG.DUPLICATE_PREPARED_STATEMENT) parsed[stmt.name] = stmt.text;
      else if (code === PG.UNDEFINED_PREPARED_STATEMENT) delete parsed[stmt.name];
      else throw err;
      return this.run<R>(client, stmt, values, true);
    }
  }
}
