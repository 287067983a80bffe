/**
 * history: one room with 1M messages (seeded in PostgreSQL with multi-row INSERT … SELECT
 * generate_series, after the room and its member were made through the API). A page of 50 at
 * each depth: through the REST route (keyset, `before=`), the same keyset in plain SQL, and an
 * OFFSET query for contrast; EXPLAIN ANALYZE of both at the deepest depth.
 */
import { api, createRooms, joinRooms, loginAdmin, signupUsers } from '../lib/api';
import { type Percentiles, samplePercentiles } from '../lib/hist';
import { list, num, type Options, size } from '../lib/options';
import { saveResult } from '../lib/report';
import { type Database } from '../lib/servers';
import { parlor, prepare } from '../lib/setup';
import { fmt, log, mono, Progress, ratio, table } from '../lib/util';

const PAGE = 50;
const CHUNK = 100_000;

async function seedMessages(db: Database, roomId: string, authorId: string, total: number) {
  const bar = new Progress('insert messages', total);
  const t0 = Date.now();
  for (let from = 1; from <= total; from += CHUNK) {
    const to = Math.min(total, from + CHUNK - 1);
    await db.query(
      `INSERT INTO messages (room_id, author_id, role, content)
       SELECT $1::uuid, $2::uuid, 'user', 'history message ' || g || ' ' || md5(g::text)
         FROM generate_series($3::int, $4::int) g`,
      [roomId, authorId, from, to],
    );
    bar.update(to);
  }
  bar.finish();
  const t1 = Date.now();
  await db.query(`VACUUM ANALYZE messages`);
  log(`  VACUUM ANALYZE in ${((Date.now() - t1) / 1000).toFixed(1)} s`);
  return t1 - t0;
}

/** Runs `fn` up to `count` times (and for at most `maxMs`), returns per-call milliseconds. */
async function timed(count: number, maxMs: number, fn: () => Promise<void>): Promise<number[]> {
  const out: number[] = [];
  const deadline = Date.now() + maxMs;
  for (let i = 0; i < count && Date.now() < deadline; i++) {
    const t = mono();
    await fn();
    out.push(mono() - t);
  }
  return out;
}

interface DepthResult {
  depth: number;
  before: number | null;
  rest: Percentiles | null;
  sqlKeyset: Percentiles | null;
  sqlOffset: Percentiles | null;
}

export async function history(o: Options): Promise<void> {
  const total = num(o.raw, 'messages', size(o, 1_000_000, 1_000_000, 10_000));
  const depths = list(
    o.raw,
    'depths',
    size(o, [0, 10_000, 500_000, 990_000], [0, 10_000, 500_000, 990_000], [0, 1000, 5000, 9900]),
  ).filter((d) => d + PAGE <= total);
  const requests = num(o.raw, 'requests', size(o, 300, 200, 20));
  const offsetRequests = num(o.raw, 'offset-requests', size(o, 50, 30, 10));

  const prep = await prepare(o);
  const server = await parlor(prep, 'parlor');
  const admin = await loginAdmin(server.url);
  const [user] = await signupUsers(server.url, 1);
  const [roomId] = await createRooms(server.url, admin, [`history-${Date.now()}`]);
  await joinRooms(server.url, [{ user, roomId }]);
  const seedMs = await seedMessages(prep.db, roomId, user.id, total);
  const [{ n: rowCount }] = await prep.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM messages WHERE room_id = $1`,
    [roomId],
  );
  log(`  ${rowCount} messages in the room (${(seedMs / 1000) | 0} s to insert)`);

  const results: DepthResult[] = [];
  const keysetSql = `SELECT m.* FROM messages m WHERE m.room_id = $1 AND m.id < $2 ORDER BY m.id DESC LIMIT ${PAGE + 1}`;
  const offsetSql = `SELECT m.* FROM messages m WHERE m.room_id = $1 ORDER BY m.id DESC OFFSET $2 LIMIT ${PAGE + 1}`;
  for (const depth of depths) {
    const [row] = await prep.db.query<{ id: string }>(
      `SELECT id FROM messages WHERE room_id = $1 ORDER BY id DESC OFFSET $2 LIMIT 1`,
      [roomId, depth],
    );
    // Depth 0 is the page a client opens a room with (no cursor); deeper pages use `before`.
    const before = depth === 0 ? null : Number(row.id) + 1;
    const path = `/api/v1/rooms/${roomId}/messages?limit=${PAGE}${before ? `&before=${before}` : ''}`;
    const page = async () => {
      const res = await api<{ items: unknown[] }>(server.url, 'GET', path, undefined, user.token);
      if (res.status !== 200 || res.body.items.length !== PAGE)
        throw new Error(`history page at depth ${depth}: HTTP ${res.status}`);
    };
    const bar = new Progress(`depth ${depth}`, 3);
    await timed(20, 10_000, page); // warm-up: plans, connections, caches
    const rest = await timed(requests, 60_000, page);
    bar.update(1);
    const cursor = before ?? Number.MAX_SAFE_INTEGER;
    const sqlKeyset = await timed(requests, 30_000, async () => {
      await prep.db.query(keysetSql, [roomId, cursor]);
    });
    bar.update(2);
    const sqlOffset = await timed(offsetRequests, 30_000, async () => {
      await prep.db.query(offsetSql, [roomId, depth]);
    });
    bar.finish();
    results.push({
      depth,
      before,
      rest: samplePercentiles(rest),
      sqlKeyset: samplePercentiles(sqlKeyset),
      sqlOffset: samplePercentiles(sqlOffset),
    });
  }

  const deepest = depths[depths.length - 1];
  const [deep] = await prep.db.query<{ id: string }>(
    `SELECT id FROM messages WHERE room_id = $1 ORDER BY id DESC OFFSET $2 LIMIT 1`,
    [roomId, deepest],
  );
  const explain = async (sql: string, params: unknown[]) =>
    (await prep.db.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS) ${sql}`, params))
      .map((r) => r['QUERY PLAN'])
      .join('\n');
  const explainKeyset = await explain(keysetSql, [roomId, Number(deep.id) + 1]);
  const explainOffset = await explain(offsetSql, [roomId, deepest]);
  console.log(`\nEXPLAIN ANALYZE, keyset at depth ${deepest}:\n${explainKeyset}`);
  console.log(`\nEXPLAIN ANALYZE, OFFSET ${deepest}:\n${explainOffset}`);

  // The floor of any authenticated REST call here (JWT + session check, one row, JSON): what
  // the page request costs beyond it is the history query and its 50-message JSON.
  const me = async () => {
    const res = await api(server.url, 'GET', '/api/v1/auth/me', undefined, user.token);
    if (res.status !== 200) throw new Error(`GET /auth/me: HTTP ${res.status}`);
  };
  await timed(20, 10_000, me);
  const authFloor = samplePercentiles(await timed(requests, 60_000, me));
  console.log(
    `\nfloor: GET /api/v1/auth/me p50 ${fmt(authFloor?.p50, 2)} ms, p99 ${fmt(authFloor?.p99, 2)} ms`,
  );

  const first = results[0];
  console.log(
    `\nhistory: ${rowCount} messages in one room, pages of ${PAGE} (server ${prep.build.source}; target: p99 at the deepest ≤ 1.5× depth 0)`,
  );
  console.log(
    table(
      [
        'depth',
        'REST p50',
        'REST p99',
        'vs depth 0',
        'SQL keyset p50',
        'p99',
        'SQL OFFSET p50',
        'p99',
      ],
      results.map((r) => {
        const x = ratio(r.rest?.p99, first.rest?.p99);
        return [
          r.depth,
          fmt(r.rest?.p50, 2),
          fmt(r.rest?.p99, 2),
          r.depth === first.depth
            ? ''
            : `${fmt(x, 2)}× ${x !== null && x <= 1.5 ? 'met' : 'MISSED'}`,
          fmt(r.sqlKeyset?.p50, 2),
          fmt(r.sqlKeyset?.p99, 2),
          fmt(r.sqlOffset?.p50, 2),
          fmt(r.sqlOffset?.p99, 2),
        ];
      }),
    ),
  );
  console.log(
    "(milliseconds; REST = GET /rooms/:id/messages?before=…&limit=50 with auth, JSON and the app's SQL)",
  );
  saveResult('history', {
    server: prep.build.source,
    options: { total, depths, requests, offsetRequests },
    seedMs,
    results,
    authFloor,
    explainKeyset,
    explainOffset,
  });
}
