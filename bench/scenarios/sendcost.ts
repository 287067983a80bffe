/**
 * sendcost: PostgreSQL's CPU per inserted row for the send batch statement, by batch size,
 * unnamed (parsed and planned at every execution) against named (prepared once per session).
 * No Parlor server: a throwaway database with the migrations applied, users, rooms and
 * memberships inserted in SQL, and the app's own statement and parameters
 * (`sendBatchQuery` from src/messages/message-store.ts) run back to back on one connection.
 * The figure is the backend's CPU time (user + system, `pidusage`) over the line divided by
 * the rows inserted: a machine shared with other work moves latency far more than it moves
 * this. Lines are interleaved (every mode of a batch size one after another, then the next
 * repeat), so the table's growth and the machine's drift fall on every mode alike.
 *
 *   --rows N            rows per line (15000; --quick 6000; --smoke 300)
 *   --batches 1,5,50    rows per statement
 *   --repeat N          runs of each line (2)
 *   --modes unnamed,named[,generic,named-noplanonce]   generic: named, on a session with
 *                             plan_cache_mode = force_generic_plan (planned once, always);
 *                             named-noplanonce: named, PLAN_ONCE's filter replaced by `true`
 *   --statements plain,full   plain: no mention, no reply (SEND_BATCH_PLAIN);
 *                             full: each row mentions one member (SEND_BATCH);
 *                             full-bare: SEND_BATCH with plain rows (what SEND_BATCH_PLAIN saves)
 *                             plain-nomember: SEND_BATCH_PLAIN without the membership, mute and
 *                             archive joins (what answering them from memory would leave)
 *   --search keep|noindex|nocolumn   keep the GIN index on `search`, drop it, or drop the
 *                             generated column with it (what indexing search costs per row)
 *   --rooms 100 --members 1000   every member is in every room
 */
import { randomUUID } from 'node:crypto';
import pidusage from 'pidusage';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../../src/database/data-source-options';
import { type NewUserMessage, PLAN_ONCE, sendBatchQuery } from '../../src/messages/message-store';
import { list, num, type Options, size, words } from '../lib/options';
import { saveResult } from '../lib/report';
import { createDatabase } from '../lib/servers';
import { onCleanup } from '../lib/run';
import { fmt, log, table } from '../lib/util';

type Mode = 'unnamed' | 'named' | 'generic' | 'named-noplanonce';
type Statement = 'plain' | 'full' | 'full-bare' | 'plain-nomember';

interface Line {
  batch: number;
  statement: Statement;
  mode: Mode;
  run: number;
  rows: number;
  /** Backend CPU per inserted row, µs. */
  cpuUsPerRow: number;
  /** Client-side wall time per statement, ms (latency: sensitive to the machine's load). */
  msPerStatement: number;
  /** Named: executions that ran PostgreSQL's cached generic plan, and those planned anew. */
  genericPlans?: number;
  customPlans?: number;
}

/** Plain rows through SEND_BATCH: its parameters with no reply and no mention. */
function fullBare(items: NewUserMessage[]) {
  const withMention = sendBatchQuery(
    items.map((m) => ({ ...m, mentions: { stored: [], userIds: [m.author.id] } })),
  );
  const values = [...withMention.values];
  values[7] = [];
  values[8] = [];
  return { statement: withMention.statement, values };
}

/** SEND_BATCH_PLAIN without its membership check: the room lock and the insert only. */
function noMember(items: NewUserMessage[]) {
  const { statement, values } = sendBatchQuery(items);
  let text = statement.text;
  for (const cut of [
    /\n\s*JOIN memberships ms ON ms\.room_id = i\.room_id AND ms\.user_id = i\.author_id/,
    /\n\s*JOIN rooms rm ON rm\.id = i\.room_id/,
    /\n\s*AND \(ms\.muted_until IS NULL OR ms\.muted_until <= now\(\)\)/,
    /\n\s*AND rm\.archived_at IS NULL/,
  ]) {
    if (!cut.test(text)) throw new Error(`plain-nomember: ${String(cut)} not in the statement`);
    text = text.replace(cut, '');
  }
  return { statement: { name: `${statement.name}_nomember`, text }, values };
}

export async function sendcost(o: Options): Promise<void> {
  const rowsPerLine = num(o.raw, 'rows', size(o, 15_000, 6_000, 300));
  const batches = list(o.raw, 'batches', [1, 5, 50]);
  const repeat = num(o.raw, 'repeat', size(o, 2, 2, 1));
  const modes = words(o.raw, 'modes', ['unnamed', 'named']) as Mode[];
  const statements = words(o.raw, 'statements', ['plain', 'full']) as Statement[];
  const search = typeof o.raw.search === 'string' ? o.raw.search : 'keep';
  const roomCount = num(o.raw, 'rooms', 100);
  const memberCount = num(o.raw, 'members', size(o, 1000, 1000, 50));

  const db = await createDatabase(o.dbUrl);
  onCleanup('drop database', () => db.drop());
  log(`throwaway database ${db.name} (dropped at the end)`);
  const ds = await new DataSource(dataSourceOptions({ url: db.url, poolSize: 1 })).initialize();
  await ds.runMigrations({ transaction: 'each' });
  await ds.destroy();
  log(`  migrations applied`);

  const users = await db.query<{ id: string; username: string }>(
    `INSERT INTO users (username, email, password_hash)
     SELECT 'u' || g, 'u' || g || '@bench.example', 'x' FROM generate_series(1, $1::int) g
     RETURNING id, username`,
    [memberCount],
  );
  const rooms = await db.query<{ id: string }>(
    `INSERT INTO rooms (name, kind, visibility)
     SELECT 'r' || g, 'group', 'public' FROM generate_series(1, $1::int) g RETURNING id`,
    [roomCount],
  );
  await db.query(
    `INSERT INTO memberships (room_id, user_id)
     SELECT r.id, u.id FROM rooms r CROSS JOIN users u`,
  );
  if (search === 'noindex') await db.query(`DROP INDEX messages_search_idx`);
  else if (search === 'nocolumn') await db.query(`ALTER TABLE messages DROP COLUMN search`);
  else if (search !== 'keep') throw new Error('--search: keep, noindex or nocolumn');
  await db.query(`VACUUM ANALYZE`);
  log(
    `  ${users.length} users, ${rooms.length} rooms, every user in every room; search: ${search}`,
  );

  let seq = 0;
  const message = (statement: Statement): NewUserMessage => {
    const i = seq++;
    const author = users[i % users.length];
    const other = users[(i + 1) % users.length];
    return {
      roomId: rooms[Math.floor(i / 7) % rooms.length].id,
      author: { id: author.id, username: author.username, displayName: null },
      content: `bench message ${i} with a few ordinary words in it, about a hundred bytes long`,
      clientMsgId: randomUUID(),
      ...(statement === 'full'
        ? {
            mentions: {
              stored: [{ userId: other.id, username: other.username }],
              userIds: [other.id],
            },
          }
        : {}),
    };
  };

  /** One line: `rows` rows in statements of `batch`, on a fresh connection (a fresh backend). */
  async function line(batch: number, statement: Statement, mode: Mode, run: number) {
    const client = new Client({ connectionString: db.url });
    await client.connect();
    // generic: the named statement with PostgreSQL told to plan it once, whatever the cost
    // estimates say (for comparison: the app does not set this).
    if (mode === 'generic') await client.query(`SET plan_cache_mode = force_generic_plan`);
    try {
      const [{ pid }] = (await client.query<{ pid: number }>(`SELECT pg_backend_pid() AS pid`))
        .rows;
      const exec = async () => {
        const items = Array.from({ length: batch }, () => message(statement));
        const { statement: app, values } =
          statement === 'full-bare'
            ? fullBare(items)
            : statement === 'plain-nomember'
              ? noMember(items)
              : sendBatchQuery(items);
        const stmt =
          mode === 'named-noplanonce'
            ? { name: `${app.name}_x`, text: app.text.replaceAll(PLAN_ONCE, 'true') }
            : app;
        const res =
          mode !== 'unnamed'
            ? await client.query({ name: stmt.name, text: stmt.text, values })
            : await client.query(stmt.text, values);
        if (res.rowCount !== batch) throw new Error(`inserted ${res.rowCount} of ${batch}`);
      };
      // Warm-up (not measured): catalog caches, and for a named statement the plan cache
      // settles on its plan after the first executions.
      for (let i = 0; i < Math.max(10, Math.ceil(200 / batch)); i++) await exec();
      const statementsRun = Math.max(1, Math.round(rowsPerLine / batch));
      const before = (await pidusage(pid)).ctime;
      const t0 = performance.now();
      for (let i = 0; i < statementsRun; i++) await exec();
      const wall = performance.now() - t0;
      const after = (await pidusage(pid)).ctime;
      const rows = statementsRun * batch;
      // Whether PostgreSQL settled on a generic plan (planned once) or plans each execution.
      const plans =
        mode !== 'unnamed'
          ? (
              await client.query<{ generic_plans: string; custom_plans: string }>(
                `SELECT generic_plans, custom_plans FROM pg_prepared_statements`,
              )
            ).rows[0]
          : undefined;
      const result: Line = {
        batch,
        statement,
        mode,
        run,
        rows,
        cpuUsPerRow: ((after - before) * 1000) / rows,
        msPerStatement: wall / statementsRun,
        ...(plans
          ? { genericPlans: Number(plans.generic_plans), customPlans: Number(plans.custom_plans) }
          : {}),
      };
      log(
        `  batch ${String(batch).padStart(3)} ${statement.padEnd(5)} ${mode.padEnd(7)} run ${run}: ` +
          `${fmt(result.cpuUsPerRow, 0)} µs CPU/row, ${fmt(result.msPerStatement, 2)} ms/statement` +
          (plans ? `, plans generic ${plans.generic_plans} custom ${plans.custom_plans}` : ''),
      );
      return result;
    } finally {
      await client.end();
    }
  }

  const lines: Line[] = [];
  for (let run = 1; run <= repeat; run++)
    for (const batch of batches)
      for (const statement of statements)
        for (const mode of modes) lines.push(await line(batch, statement, mode, run));
  pidusage.clear();

  const rows: (string | number)[][] = [];
  const summary: Record<string, unknown>[] = [];
  for (const batch of batches)
    for (const statement of statements) {
      const of = (mode: Mode) =>
        lines
          .filter((l) => l.batch === batch && l.statement === statement && l.mode === mode)
          .map((l) => l.cpuUsPerRow);
      const mean = (v: number[]) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN);
      const cells = modes.map((m) => {
        const v = of(m);
        return `${fmt(mean(v), 0)} (${v.map((x) => fmt(x, 0)).join(', ')})`;
      });
      const [a, b] = [mean(of('unnamed')), mean(of('named'))];
      const change =
        Number.isFinite(a) && Number.isFinite(b) ? `${fmt((b / a - 1) * 100, 0)} %` : '';
      rows.push([batch, statement, ...cells, change]);
      summary.push({ batch, statement, unnamed: of('unnamed'), named: of('named') });
    }
  log(
    `\nPostgreSQL backend CPU per inserted row, µs: mean (each run); ${rowsPerLine} rows a line, search ${search}`,
  );
  log(table(['rows/statement', 'statement', ...modes, 'named vs unnamed'], rows));
  saveResult('sendcost', {
    config: { rowsPerLine, batches, repeat, modes, statements, search, roomCount, memberCount },
    lines,
    summary,
  });
}
