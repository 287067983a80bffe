/**
 * parts: the ceiling of each part of a deployment on this machine, one part at a time, for the
 * capacity model in docs/scaling.md.
 *
 * - **postgres**: Parlor's own send statement (`SEND_BATCH_PLAIN`, exported by the message
 *   store, executed as the app does: an unnamed statement per batch, autocommit) on a throwaway
 *   database migrated with the app's migrations, batches of 1 … 256 rows of 100 B over 100
 *   rooms × 10 members, from 1 and 2 connections: rows/s and the backends' CPU per row. Then the
 *   same with the search index dropped, and with the search column dropped too (what moving
 *   search indexing off the commit path would save).
 * - **redis**: PUBLISH (classic adapter; the subscriber PSUBSCRIBEs its pattern) and SPUBLISH
 *   (sharded adapter; the subscriber SSUBSCRIBEs each room's channel) of 150 B from one
 *   connection, one at a time and in pipelines of 64, with no subscriber and with one in a
 *   process of its own: messages/s and the redis-server's CPU per message, on a private
 *   redis-server.
 * - **instance**: one Parlor instance's messages/s and deliveries/s per core of server CPU,
 *   derived (not measured here) from the newest fanout result in bench/results, or from the
 *   figures docs/benchmarks.md records when there is none.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../../src/database/data-source-options';
import { SEND_BATCH_PLAIN } from '../../src/messages/message-store';
import { samplePercentiles } from '../lib/hist';
import { list, num, type Options, size, words } from '../lib/options';
import { RESULTS, saveResult } from '../lib/report';
import { onCleanup } from '../lib/run';
import { BUILD, createDatabase, type Database, startRedis, track } from '../lib/servers';
import { Usage } from '../lib/usage';
import { fmt, log, mono, sleep, table } from '../lib/util';

const ROOMS = 100;
const MEMBERS = 10;
const CONTENT_BYTES = 100;
const PAYLOAD_BYTES = 150;
const IN_FLIGHT = 64;

export async function parts(o: Options): Promise<void> {
  const seconds = num(o.raw, 'seconds', size(o, 5, 2, 0.3));
  const batches = list(
    o.raw,
    'batches',
    size(o, [1, 4, 16, 64, 256], [1, 4, 16, 64, 256], [1, 16]),
  );
  const connections = list(o.raw, 'connections', [1, 2]);
  const which = words(o.raw, 'parts', ['instance', 'postgres', 'redis']);
  const options = { seconds, batches, connections, parts: which, quick: o.quick, smoke: o.smoke };
  const out: Record<string, unknown> = { options };

  if (which.includes('instance')) out.instance = instance();
  if (which.includes('postgres'))
    out.postgres = await postgres(o, seconds * 1000, batches, connections);
  if (which.includes('redis')) out.redis = await redis(seconds * 1000);
  saveResult('parts', out);
}

// --- one instance (derived) -----------------------------------------------------------------

interface InstanceSource {
  source: string;
  /** Offered msgs/s of the fixed-rate step the figures come from. */
  rate: number;
  /** Receivers per message (the room's size, the sender included). */
  members: number;
  serverUsPerMsg: number;
  postgresUsPerMsg: number;
}

/**
 * docs/benchmarks.md, "Issues 14–18 on the fan-out path", run 2: `fanout --quick --shapes small
 * --payloads 100` at `496b212` (2026-11-27), 100 rooms × 10, 100 B, the fixed step at 25 % of
 * the reference's maximum (641/s). Used when bench/results holds no fanout run.
 */
const DOCUMENTED: InstanceSource = {
  source: 'docs/benchmarks.md: fanout --quick at 496b212 (2026-11-27), 100 rooms × 10, 100 B',
  rate: 641,
  members: 10,
  serverUsPerMsg: 1050,
  postgresUsPerMsg: 804,
};

interface FanoutFile {
  commit?: string;
  date?: string;
  options?: { members?: number };
  summary?: {
    shape: string;
    payloadBytes: number;
    fixed?: {
      rate: number;
      parlorServerCpuUsPerMsg?: number;
      parlorPostgresCpuUsPerMsg?: number;
    }[];
  }[];
}

/** The newest fanout result's small-room fixed-rate step at 25 %, if there is one. */
function newestFanout(): InstanceSource | null {
  let files: string[];
  try {
    files = readdirSync(RESULTS).filter((f) => /^fanout-.*\.json$/.test(f));
  } catch {
    return null;
  }
  for (const f of files.sort().reverse()) {
    try {
      const r = JSON.parse(readFileSync(join(RESULTS, f), 'utf8')) as FanoutFile;
      const row = r.summary?.find((s) => s.shape.includes('rooms ×') && s.payloadBytes === 100);
      const fixed = row?.fixed?.[0];
      if (!row || !fixed?.parlorServerCpuUsPerMsg || !fixed.parlorPostgresCpuUsPerMsg) continue;
      return {
        source: `bench/results/${f} (${r.commit?.slice(0, 7) ?? '?'}, ${row.shape})`,
        rate: fixed.rate,
        members: r.options?.members ?? MEMBERS,
        serverUsPerMsg: fixed.parlorServerCpuUsPerMsg,
        postgresUsPerMsg: fixed.parlorPostgresCpuUsPerMsg,
      };
    } catch {
      // not a fanout result this code reads
    }
  }
  return null;
}

function instance() {
  const s = newestFanout() ?? DOCUMENTED;
  const msgsPerCore = 1e6 / s.serverUsPerMsg;
  const figures = {
    ...s,
    /** Persisted msgs/s one core of server CPU carries at this shape. */
    msgsPerCore: Math.round(msgsPerCore),
    /** Deliveries (socket emits to a receiver, the sender included) per core of server CPU. */
    deliveriesPerCore: Math.round(msgsPerCore * s.members),
    /** The server's CPU per delivery, with each message's own work spread over its receivers. */
    serverUsPerDelivery: Math.round(s.serverUsPerMsg / s.members),
    /** Persisted msgs/s per core of PostgreSQL CPU, at the batch sizes that load produced. */
    postgresMsgsPerCore: Math.round(1e6 / s.postgresUsPerMsg),
  };
  console.log(`\none instance (derived from ${s.source}, at ${s.rate} msgs/s):`);
  console.log(
    table(
      [
        'server µs/msg',
        'msgs/s per core',
        'deliveries/s per core',
        'PG µs/msg',
        'PG msgs/s per core',
      ],
      [
        [
          fmt(s.serverUsPerMsg, 0),
          figures.msgsPerCore,
          figures.deliveriesPerCore,
          fmt(s.postgresUsPerMsg, 0),
          figures.postgresMsgsPerCore,
        ],
      ],
    ),
  );
  return figures;
}

// --- PostgreSQL: the send statement's ceiling by batch size ----------------------------------

/** 100 B of words from a small vocabulary: the search column gets real lexemes to index. */
function contents(n: number): string[] {
  const vocab = Array.from({ length: 512 }, (_, i) =>
    (i * 2654435761)
      .toString(36)
      .replace(/[0-9]/g, '')
      .slice(0, 3 + (i % 6)),
  ).filter((w) => w.length > 1);
  return Array.from({ length: n }, (_, k) => {
    let s = `m${k}`;
    while (s.length < CONTENT_BYTES) s += ` ${vocab[(k * 31 + s.length * 7) % vocab.length]}`;
    return s.slice(0, CONTENT_BYTES);
  });
}

interface PgLine {
  variant: string;
  connections: number;
  batch: number;
  statements: number;
  rows: number;
  seconds: number;
  rowsPerSec: number;
  /** PostgreSQL backends' CPU % over the line (100 % = one core). */
  postgresCpu: number;
  postgresUsPerRow: number | null;
  /** What one core of backend CPU would insert at this batch size: 1e6 / µs per row. */
  rowsPerCore: number | null;
  statementMs: ReturnType<typeof samplePercentiles>;
  benchCpu: number;
  machineCpu: number;
}

async function seed(db: Database): Promise<{ authors: string[]; roomOf: string[] }> {
  const tag = randomBytes(3).toString('hex');
  const users = await db.query<{ id: string }>(
    `INSERT INTO users (username, email, password_hash)
     SELECT 'p${tag}_' || g, 'p${tag}_' || g || '@example.com', 'x' FROM generate_series(1, $1::int) g
     RETURNING id`,
    [ROOMS * MEMBERS],
  );
  const rooms = await db.query<{ id: string }>(
    `INSERT INTO rooms (name, kind, visibility)
     SELECT 'parts-${tag}-' || g, 'group', 'public' FROM generate_series(1, $1::int) g RETURNING id`,
    [ROOMS],
  );
  const authors = users.map((u) => u.id);
  const roomOf = authors.map((_, i) => rooms[Math.floor(i / MEMBERS)].id);
  await db.query(
    `INSERT INTO memberships (room_id, user_id) SELECT * FROM unnest($1::uuid[], $2::uuid[])`,
    [roomOf, authors],
  );
  return { authors, roomOf };
}

async function postgres(
  o: Options,
  lineMs: number,
  batches: number[],
  connections: number[],
): Promise<{ server: string; lines: PgLine[] }> {
  log('\n== parts: PostgreSQL, the send statement by batch size ==');
  const db = await createDatabase(o.dbUrl);
  onCleanup('drop database', () => db.drop());
  log(`  throwaway database ${db.name} (dropped at the end)`);
  const ds = new DataSource(dataSourceOptions({ url: db.url, poolSize: 1 }));
  await ds.initialize();
  await ds.runMigrations();
  await ds.destroy();
  const [{ server_version: version }] = await db.query<{ server_version: string }>(
    `SHOW server_version`,
  );
  const { authors, roomOf } = await seed(db);
  log(`  migrated; PostgreSQL ${version}; ${authors.length} users in ${ROOMS} rooms`);

  const clients: Client[] = [];
  const pids: number[] = [];
  for (let i = 0; i < Math.max(...connections); i++) {
    const c = new Client({ connectionString: db.url });
    await c.connect();
    onCleanup('close client', () => c.end());
    clients.push(c);
    pids.push((await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid);
  }

  const cleaner = new Client({ connectionString: db.url });
  await cleaner.connect();
  onCleanup('close cleaner', () => cleaner.end());
  const cleanerPid = (await cleaner.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'))
    .rows[0].pid;

  const pool = contents(4096);
  let seq = 0;
  const params = (n: number) => {
    const room: string[] = [];
    const author: string[] = [];
    const content: string[] = [];
    const clientMsgId: string[] = [];
    for (let i = 0; i < n; i++) {
      const k = seq++;
      const u = (k * 7919) % authors.length;
      room.push(roomOf[u]);
      author.push(authors[u]);
      content.push(pool[k % pool.length]);
      clientMsgId.push(`parts-${k}`);
    }
    return [
      room,
      author,
      content,
      clientMsgId,
      Array.from({ length: n }, (_, i) => i),
      Array(n).fill(null),
    ];
  };
  const send = async (c: Client, n: number) => {
    // Prepared (named), as the app runs it (src/database/prepared-statements.ts).
    const r = await c.query({ name: 'parts_send', text: SEND_BATCH_PLAIN, values: params(n) });
    if (r.rowCount !== n) throw new Error(`send statement inserted ${r.rowCount} of ${n} rows`);
    return n;
  };

  // `pending list`: the GIN index with fastupdate on (PostgreSQL's default 4 MB pending list),
  // merged into the index every second by gin_clean_pending_list() on a connection of its own,
  // as the app's SearchIndexCleaner does; that backend's CPU is counted, and a last merge at the
  // end of the line is inside the measured time.
  const variants: { name: string; ddl?: string; clean?: boolean }[] = [
    { name: 'as migrated' },
    {
      name: 'pending list',
      ddl: 'ALTER INDEX messages_search_idx SET (fastupdate = on)',
      clean: true,
    },
    { name: 'no search index', ddl: 'DROP INDEX messages_search_idx' },
    { name: 'no search column', ddl: 'ALTER TABLE messages DROP COLUMN search' },
  ];
  const lines: PgLine[] = [];
  for (const v of variants) {
    if (v.ddl) await db.query(v.ddl);
    for (const conns of connections) {
      for (const batch of batches) {
        await db.query('TRUNCATE messages CASCADE');
        for (const c of clients.slice(0, conns)) for (let i = 0; i < 3; i++) await send(c, batch);
        const usage = new Usage({
          postgres: v.clean ? [...pids.slice(0, conns), cleanerPid] : pids.slice(0, conns),
        });
        let cleaning: Promise<unknown> | undefined;
        const clean = () =>
          (cleaning ??= cleaner
            .query(`SELECT gin_clean_pending_list('messages_search_idx')`)
            .finally(() => (cleaning = undefined)));
        const cleanTimer = v.clean ? setInterval(() => void clean(), 1000) : undefined;
        const cpu0 = process.cpuUsage();
        const samples: number[] = [];
        let rows = 0;
        await usage.begin();
        const t0 = mono();
        const deadline = t0 + lineMs;
        await Promise.all(
          clients.slice(0, conns).map(async (c) => {
            while (mono() < deadline) {
              const t = mono();
              rows += await send(c, batch);
              samples.push(mono() - t);
            }
          }),
        );
        clearInterval(cleanTimer);
        if (v.clean) {
          await cleaning;
          await clean();
        }
        const wall = mono() - t0;
        const u = await usage.end();
        const cpu = process.cpuUsage(cpu0);
        const pg = u.postgres;
        const line: PgLine = {
          variant: v.name,
          connections: conns,
          batch,
          statements: samples.length,
          rows,
          seconds: wall / 1000,
          rowsPerSec: Math.round(rows / (wall / 1000)),
          postgresCpu: pg.cpu,
          postgresUsPerRow: rows ? Math.round((pg.cpuMs * 1000) / rows) : null,
          rowsPerCore: rows && pg.cpuMs ? Math.round(rows / (pg.cpuMs / 1000)) : null,
          statementMs: samplePercentiles(samples),
          benchCpu: Math.round(((cpu.user + cpu.system) / 1000 / wall) * 100),
          machineCpu: u.machine.cpu,
        };
        lines.push(line);
        log(
          `  ${v.name}, ${conns} conn, ${batch} rows: ${line.rowsPerSec} rows/s, ${fmt(line.postgresUsPerRow, 0)} µs/row`,
        );
      }
    }
  }
  await Promise.all([...clients, cleaner].map((c) => c.end().catch(() => undefined)));
  clients.length = 0;

  console.log(
    `\nPostgreSQL ${version}: the send statement (SEND_BATCH_PLAIN), ${CONTENT_BYTES} B rows over ${ROOMS} rooms × ${MEMBERS}, autocommit, synchronous_commit as configured`,
  );
  console.log(
    table(
      [
        'variant',
        'conns',
        'rows/stmt',
        'rows/s',
        'stmt p50 ms',
        'p99 ms',
        'PG CPU %',
        'PG µs/row',
        'rows/s per PG core',
        'bench %',
        'machine %',
      ],
      lines.map((l) => [
        l.variant,
        l.connections,
        l.batch,
        l.rowsPerSec,
        fmt(l.statementMs?.p50, 2),
        fmt(l.statementMs?.p99, 2),
        fmt(l.postgresCpu, 0),
        fmt(l.postgresUsPerRow, 0),
        l.rowsPerCore ?? '—',
        l.benchCpu,
        fmt(l.machineCpu, 0),
      ]),
    ),
  );
  console.log(
    '(PG = the backends of the connections; the WAL writer and checkpointer are not counted)',
  );
  return { server: version, lines };
}

// --- Redis: the publish ceiling --------------------------------------------------------------

interface RedisLine {
  command: 'PUBLISH' | 'SPUBLISH';
  subscribers: number;
  /**
   * `await`: one command at a time, each awaited (a round trip per message); `concurrent`:
   * IN_FLIGHT commands in flight, each its own write on the socket (what the adapter's client
   * does under load: one `spublish` call per broadcast); `pipeline`: pipelines of IN_FLIGHT
   * commands, one write each, one pipeline at a time (Redis's own ceiling).
   */
  mode: RedisMode;
  inFlight: number;
  published: number;
  received: number | null;
  seconds: number;
  msgsPerSec: number;
  redisCpu: number;
  redisUsPerMsg: number | null;
  /** 1e6 / µs per message: what one redis-server (one thread) would publish at full CPU. */
  msgsPerRedisCore: number | null;
  clientCpu: number;
  subscriberCpu: number | null;
  machineCpu: number;
}

type RedisMode = 'await' | 'concurrent' | 'pipeline';

const CHANNELS = Array.from({ length: ROOMS }, (_, i) => `socket.io#/#bench-room-${i}#`);

/** A subscriber process (bench/redis-subscriber.ts), resolved once it is subscribed. */
async function subscriber(
  url: string,
  sharded: boolean,
): Promise<{ proc: ChildProcess; count: () => Promise<number> }> {
  const args = sharded ? ['sharded', ...CHANNELS] : ['classic', 'socket.io#/#*'];
  const proc = fork(join(BUILD, 'bench', 'redis-subscriber.js'), [url, ...args], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  track(proc);
  await new Promise<void>((res, rej) => {
    const timer = setTimeout(() => rej(new Error('redis subscriber did not subscribe')), 10_000);
    proc.once('message', (m: { ready?: boolean; error?: string }) => {
      clearTimeout(timer);
      if (m.ready) res();
      else rej(new Error(`redis subscriber: ${m.error}`));
    });
  });
  const count = () =>
    new Promise<number>((res) => {
      const on = (m: { count?: number }) => {
        if (typeof m.count !== 'number') return;
        proc.off('message', on);
        res(m.count);
      };
      proc.on('message', on);
      proc.send('count');
    });
  return { proc, count };
}

async function redis(lineMs: number): Promise<{ server: string; lines: RedisLine[] }> {
  log('\n== parts: Redis, the publish ceiling ==');
  const server = await startRedis();
  onCleanup('stop redis', () => server.stop());
  const pub = new Redis(server.url, { maxRetriesPerRequest: 1 });
  onCleanup('close redis client', () => void pub.disconnect());
  const version = /redis_version:(\S+)/.exec(await pub.info('server'))?.[1] ?? '?';
  log(`  private redis-server ${version} (pid ${server.pid}) at ${server.url}`);
  const payload = randomBytes(PAYLOAD_BYTES);

  const lines: RedisLine[] = [];
  for (const command of ['PUBLISH', 'SPUBLISH'] as const) {
    for (const subscribers of [0, 1]) {
      for (const mode of ['await', 'concurrent', 'pipeline'] as const) {
        const inFlight = mode === 'await' ? 1 : IN_FLIGHT;
        const sub = subscribers ? await subscriber(server.url, command === 'SPUBLISH') : null;
        const publishOne = (ch: string) =>
          command === 'PUBLISH' ? pub.publish(ch, payload) : pub.spublish(ch, payload);
        const WARM = 100;
        for (let i = 0; i < WARM; i++) await publishOne(CHANNELS[i % ROOMS]);
        let before = 0;
        for (let waited = 0; sub && before < WARM && waited < 5000; waited += 50) {
          before = await sub.count();
          if (before < WARM) await sleep(50);
        }
        const usage = new Usage({
          redis: [server.pid],
          ...(sub ? { subscriber: [sub.proc.pid!] } : {}),
        });
        const cpu0 = process.cpuUsage();
        await usage.begin();
        const t0 = mono();
        const deadline = t0 + lineMs;
        let n = 0;
        if (mode === 'concurrent') {
          await Promise.all(
            Array.from({ length: inFlight }, async () => {
              while (mono() < deadline) await publishOne(CHANNELS[n++ % ROOMS]);
            }),
          );
        }
        while (mode !== 'concurrent' && mono() < deadline) {
          if (mode === 'await') {
            await publishOne(CHANNELS[n % ROOMS]);
            n++;
          } else {
            const p = pub.pipeline();
            for (let i = 0; i < inFlight; i++) {
              const ch = CHANNELS[(n + i) % ROOMS];
              if (command === 'PUBLISH') p.publish(ch, payload);
              else p.spublish(ch, payload);
            }
            await p.exec();
            n += inFlight;
          }
        }
        const wall = mono() - t0;
        const cpu = process.cpuUsage(cpu0);
        // The subscriber may still be reading what Redis sent it: wait (≤ 5 s) until it has all.
        let received: number | null = null;
        if (sub) {
          for (let waited = 0; ; waited += 100) {
            received = (await sub.count()) - before;
            if (received >= n || waited >= 5000) break;
            await sleep(100);
          }
        }
        const u = await usage.end();
        sub?.proc.kill();
        const r = u.redis;
        const line: RedisLine = {
          command,
          subscribers,
          mode,
          inFlight,
          published: n,
          received,
          seconds: wall / 1000,
          msgsPerSec: Math.round(n / (wall / 1000)),
          redisCpu: r.cpu,
          redisUsPerMsg: n ? Math.round(((r.cpuMs * 1000) / n) * 100) / 100 : null,
          msgsPerRedisCore: n && r.cpuMs ? Math.round(n / (r.cpuMs / 1000)) : null,
          clientCpu: Math.round(((cpu.user + cpu.system) / 1000 / wall) * 100),
          subscriberCpu: sub ? u.subscriber.cpu : null,
          machineCpu: u.machine.cpu,
        };
        lines.push(line);
        log(
          `  ${command}, ${subscribers} sub, ${mode} (${inFlight}): ${line.msgsPerSec} msgs/s, ${fmt(line.redisUsPerMsg, 2)} µs/msg`,
        );
      }
    }
  }
  pub.disconnect();

  console.log(
    `\nRedis ${version}: ${PAYLOAD_BYTES} B messages over ${ROOMS} room channels from one connection (PUBLISH: subscriber on the classic adapter's pattern; SPUBLISH: on each room's shard channel)`,
  );
  console.log(
    table(
      [
        'command',
        'subscribers',
        'in flight',
        'msgs/s',
        'received',
        'redis CPU %',
        'redis µs/msg',
        'msgs/s per redis core',
        'client %',
        'subscriber %',
        'machine %',
      ],
      lines.map((l) => [
        l.command,
        l.subscribers,
        l.mode === 'await' ? '1 (await each)' : `${l.inFlight} (${l.mode})`,
        l.msgsPerSec,
        l.received === null ? '—' : `${fmt((100 * l.received) / Math.max(1, l.published), 1)} %`,
        fmt(l.redisCpu, 0),
        fmt(l.redisUsPerMsg, 2),
        l.msgsPerRedisCore ?? '—',
        l.clientCpu,
        fmt(l.subscriberCpu, 0),
        fmt(l.machineCpu, 0),
      ]),
    ),
  );
  return { server: version, lines };
}
