/**
 * Fault drills: `npm run drill -- <postgres-kill|instance-kill|redis-restart|all> [flags]`.
 * Each runs the built server (compiled from the current sources) against PostgreSQL and Redis
 * of its own, drives real socket.io clients that retry until acknowledged, breaks something
 * mid-run, and prints one VERDICT line; the exit code is non-zero when anything acknowledged
 * was lost or duplicated, or the app did not fail fast or recover. See docs/reliability.md.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { MessageDto } from '../../src/messages/dto/message.dto';
import { buildServer, killChildren, type Running, startServer } from '../support/server-process';
import { PrivatePostgres, PrivateRedis, sleep, until } from './infra';
import {
  api,
  type ClientSocket,
  connect,
  Ledger,
  login,
  pct,
  publicRoom,
  Sender,
  signup,
  storedRows,
  type Verdict,
  verdict,
} from './traffic';

const ADMIN = {
  username: 'drill_admin',
  email: 'drill-admin@example.com',
  password: 'drill-admin-pw-1',
};

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    clients: { type: 'string', default: '4' },
    interval: { type: 'string', default: '50' },
    warmup: { type: 'string', default: '5' },
    down: { type: 'string', default: '6' },
    after: { type: 'string', default: '8' },
    cycles: { type: 'string', default: '2' },
    window: { type: 'string', default: '4' },
    'ack-timeout': { type: 'string', default: '10000' },
    verbose: { type: 'boolean', default: false },
  },
});
const num = (k: keyof typeof flags) => Number(flags[k]);
const opts = {
  clients: num('clients'),
  intervalMs: num('interval'),
  warmupMs: num('warmup') * 1000,
  downMs: num('down') * 1000,
  afterMs: num('after') * 1000,
  cycles: num('cycles'),
  window: num('window'),
  ackTimeoutMs: num('ack-timeout'),
};
/** An error ack slower than this is not "failing fast" (the pool's connect timeout is 5 s). */
const FAIL_FAST_BOUND_MS = 6000;
const DRAIN_MS = 60_000;

const t0 = Date.now();
const log = (msg: string) =>
  process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);

let main = '';
function serverEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'production',
    LOG_LEVEL: flags.verbose ? 'info' : 'fatal',
    HOST: '127.0.0.1',
    PORT: '0',
    BCRYPT_COST: '4',
    JWT_SECRET: 'drill-secret-drill-secret-drill-secret-0123',
    ADMIN_USERNAME: ADMIN.username,
    ADMIN_EMAIL: ADMIN.email,
    ADMIN_PASSWORD: ADMIN.password,
    RATE_LIMIT_SEND: '1000000',
    RATE_LIMIT_EDIT: '1000000',
    RATE_LIMIT_REACT: '1000000',
    RATE_LIMIT_ROOMS: '1000000',
    RATE_LIMIT_TYPING: '1000000',
    RATE_LIMIT_READ: '1000000',
    USER_MAX_INFLIGHT: '1000000',
    AUTH_THROTTLE_IP_LIMIT: '1000000',
    AUTH_THROTTLE_USER_LIMIT: '1000000',
    AUTH_THROTTLE_ACCOUNT_LIMIT: '1000000',
    WS_MAX_SOCKETS_PER_USER: '100',
    PRESENCE_HEARTBEAT_MS: '500',
    PRESENCE_TTL_MS: '2000',
    SHUTDOWN_TIMEOUT_MS: '3000',
    ...extra,
  };
}

/** Polls /health/ready of each server every 200 ms and keeps the answers. */
class ReadinessMonitor {
  readonly samples: { at: number; url: string; status: number; ms: number }[] = [];
  private stopped = false;
  private readonly loop: Promise<void>;
  constructor(private readonly urls: () => string[]) {
    this.loop = this.run();
  }
  private async run() {
    while (!this.stopped) {
      for (const url of this.urls()) {
        const at = Date.now();
        const status = await fetch(`${url}/health/ready`, { signal: AbortSignal.timeout(5000) })
          .then((r) => r.status)
          .catch(() => 0);
        this.samples.push({ at, url, status, ms: Date.now() - at });
      }
      await sleep(200);
    }
  }
  between(from: number, to: number, url?: string) {
    return this.samples.filter((s) => s.at >= from && s.at <= to && (!url || s.url === url));
  }
  async stop() {
    this.stopped = true;
    await this.loop;
  }
}

/** Reads a room from `since` to the end, as a reconnecting client does. */
async function resync(socket: ClientSocket, roomId: string, since: number) {
  const got = new Map<number, MessageDto>();
  let cursor = since;
  for (let page = 0; page < 10_000; page++) {
    const res = await socket.timeout(10_000).emitWithAck('room.join', { roomId, since: cursor });
    if (!res.ok) throw new Error(`resync: ${res.error.code}`);
    for (const m of res.data.messages) got.set(m.id, m);
    cursor = res.data.cursor;
    if (!res.data.hasMore) break;
  }
  return got;
}

async function adminToken(url: string) {
  return login(url, ADMIN.username, ADMIN.password);
}

// --- postgres-kill -------------------------------------------------------------------------

async function postgresKill(): Promise<Verdict> {
  const name = 'postgres-kill';
  const pg = await PrivatePostgres.create();
  let server: Running | undefined;
  const senders: Sender[] = [];
  try {
    pg.start();
    log(`private PostgreSQL on 127.0.0.1:${pg.port} (${pg.dir})`);
    server = await startServer(main, serverEnv({ DATABASE_URL: pg.url }));
    const url = server.url;
    log(`Parlor on ${url}`);
    const admin = await adminToken(url);
    const users = await Promise.all(
      Array.from({ length: opts.clients }, (_, i) => signup(url, 'pgk', i)),
    );
    const roomId = await publicRoom(url, admin, users);
    const ledger = new Ledger();
    const ready = new ReadinessMonitor(() => [url]);
    for (const [i, u] of users.entries()) {
      senders.push(
        new Sender({
          urls: () => [url],
          token: u.accessToken,
          roomId,
          tag: `pgk${i}`,
          intervalMs: opts.intervalMs,
          ackTimeoutMs: opts.ackTimeoutMs,
          window: opts.window,
          ledger,
        }),
      );
    }
    log(
      `${users.length} clients sending one message every ${opts.intervalMs} ms each, ${opts.window} in flight`,
    );
    await sleep(opts.warmupMs);

    const problems: string[] = [];
    const notes: string[] = [];
    for (let cycle = 1; cycle <= opts.cycles; cycle++) {
      const how = cycle % 2 === 1 ? 'SIGKILL' : 'pg_ctl stop -m immediate';
      const errorsBefore = ledger.errorAckMs.length;
      const acksBefore = ledger.acknowledged;
      const downAt = Date.now();
      if (how === 'SIGKILL') pg.kill();
      else pg.stopImmediate();
      await pg.waitDown();
      log(`cycle ${cycle}: PostgreSQL killed (${how}) after ${acksBefore} acks`);
      await sleep(Math.min(1500, opts.downMs / 2));
      // Probes while it is down: REST send, a fresh handshake, readiness.
      const rest = await api<{ code?: string }>(
        url,
        'POST',
        `/api/v1/rooms/${roomId}/messages`,
        { clientMsgId: `pgk-rest-${cycle}`, content: 'during outage' },
        users[0].accessToken,
      ).catch((e: Error) => ({ status: 0, body: { code: e.message }, ms: -1 }));
      const handshake = await connect(url, users[0].accessToken, 8000).then(
        (s) => {
          s.close();
          return 'connected';
        },
        (e: { code?: string; message: string }) => e.code ?? e.message,
      );
      await sleep(Math.max(0, opts.downMs - (Date.now() - downAt)));
      const upAt = Date.now();
      pg.start();
      const restartedIn = Date.now() - upAt;
      const readyIn = await until(
        async () => (await fetch(`${url}/health/ready`)).status === 200,
        60_000,
        'readiness after restart',
        100,
      ).catch(() => -1);
      const firstAck = await until(
        () => [...ledger.messages.values()].some((m) => (m.ackedAt ?? 0) > upAt),
        60_000,
        'first ack after restart',
        50,
      ).catch(() => -1);
      const outage = ready.between(downAt + 500, upAt);
      const notReady = outage.filter((s) => s.status === 503).length;
      const errorMs = ledger.errorAckMs.slice(errorsBefore);
      const slowest = Math.max(0, ...errorMs);
      log(
        `cycle ${cycle}: down ${((upAt - downAt) / 1000).toFixed(1)} s; ${errorMs.length} error acks ` +
          `(p50 ${pct(errorMs, 50)} ms, p99 ${pct(errorMs, 99)} ms, max ${slowest} ms); ` +
          `REST send ${rest.status} ${rest.body?.code ?? ''} in ${rest.ms} ms; handshake → ${handshake}; ` +
          `/health/ready 503 in ${notReady}/${outage.length} polls; ` +
          `restart ${restartedIn} ms, ready again ${readyIn} ms later, first ack ${firstAck} ms after restart`,
      );
      notes.push(
        `cycle ${cycle} (${how}): ${errorMs.length} error acks max ${slowest} ms, REST ${rest.status} in ${rest.ms} ms, handshake ${handshake}, ready 503 ${notReady}/${outage.length}, first ack ${firstAck} ms after restart`,
      );
      if (slowest > FAIL_FAST_BOUND_MS)
        problems.push(`cycle ${cycle}: an error ack took ${slowest} ms (> ${FAIL_FAST_BOUND_MS})`);
      if (rest.status !== 503 || rest.body?.code !== 'UNAVAILABLE')
        problems.push(
          `cycle ${cycle}: REST send during the outage answered ${rest.status} ${rest.body?.code}`,
        );
      if (rest.ms > FAIL_FAST_BOUND_MS)
        problems.push(`cycle ${cycle}: REST send took ${rest.ms} ms`);
      if (handshake !== 'UNAVAILABLE')
        problems.push(
          `cycle ${cycle}: a handshake during the outage answered ${handshake}, not UNAVAILABLE`,
        );
      if (!outage.length || notReady !== outage.length)
        problems.push(
          `cycle ${cycle}: /health/ready was 503 in ${notReady} of ${outage.length} polls`,
        );
      if (readyIn < 0) problems.push(`cycle ${cycle}: never ready again`);
      if (firstAck < 0) problems.push(`cycle ${cycle}: no ack after the restart`);
      await sleep(opts.afterMs);
    }
    log('stopping new sends; draining retries');
    await Promise.all(senders.map((s) => s.stop(DRAIN_MS)));
    await ready.stop();
    if (ledger.timeouts)
      problems.push(`${ledger.timeouts} send(s) hung past ${opts.ackTimeoutMs} ms`);
    const unexpected = [...ledger.errors.keys()].filter((c) => c !== 'UNAVAILABLE');
    if (unexpected.length) problems.push(`unexpected error codes: ${unexpected.join(', ')}`);
    if (server.proc.exitCode !== null) problems.push('the server process died');
    const rows = await storedRows(pg.url, [roomId]);
    return verdict(name, ledger, rows, { problems, notes });
  } finally {
    for (const s of senders) s.close();
    await server?.stop();
    pg.destroy();
  }
}

// --- two instances on Redis: shared set-up -------------------------------------------------

async function twoInstances(tag: string) {
  const pg = await PrivatePostgres.create();
  pg.start();
  const redis = await PrivateRedis.create();
  await redis.start();
  const env = serverEnv({ DATABASE_URL: pg.url, REDIS_URL: redis.url });
  const a = await startServer(main, env);
  const b = await startServer(main, env);
  log(`private PostgreSQL :${pg.port}, redis-server :${redis.port}; A ${a.url}, B ${b.url}`);
  const admin = await adminToken(a.url);
  const users = await Promise.all(
    Array.from({ length: opts.clients }, (_, i) => signup(i % 2 ? b.url : a.url, tag, i)),
  );
  const watcherUser = await signup(b.url, `${tag}w`, 0);
  const roomId = await publicRoom(a.url, admin, [...users, watcherUser]);
  return { pg, redis, env, a, b, users, watcherUser, roomId };
}

/** A client that only listens (live delivery), and later resyncs from where it started. */
async function watcher(url: string, token: string, roomId: string) {
  const socket = await connect(url, token);
  const live = new Set<number>();
  let liveDuplicates = 0;
  socket.on('message.created', (m) => {
    if (m.roomId !== roomId) return;
    if (live.has(m.id)) liveDuplicates++;
    live.add(m.id);
  });
  const first = await socket.timeout(10_000).emitWithAck('room.join', { roomId });
  if (!first.ok) throw new Error(`watcher join: ${first.error.code}`);
  return { socket, live, liveDuplicates: () => liveDuplicates, cursor: first.data.cursor };
}

function checkResync(
  ledger: Ledger,
  got: Map<number, MessageDto>,
  problems: string[],
  who: string,
): number {
  const acked = [...ledger.messages.values()].filter((m) => m.ackedId !== undefined);
  const missing = acked.filter((m) => !got.has(m.ackedId!)).length;
  if (missing) problems.push(`${who}: ${missing} acknowledged message(s) missing after resync`);
  return missing;
}

// --- instance-kill -------------------------------------------------------------------------

async function instanceKill(): Promise<Verdict> {
  const name = 'instance-kill';
  const setup = await twoInstances('ik');
  const { pg, redis, env, b, users, watcherUser, roomId } = setup;
  let a: Running | undefined = setup.a;
  const current = (): Running => {
    if (!a) throw new Error('instance A is down');
    return a;
  };
  const senders: Sender[] = [];
  const problems: string[] = [];
  const notes: string[] = [];
  try {
    const w = await watcher(b.url, watcherUser.accessToken, roomId);
    const ledger = new Ledger();
    for (const [i, u] of users.entries()) {
      const home = i % 2 ? 'B' : 'A';
      senders.push(
        new Sender({
          // Clients of A fail over to B while A is down, as behind a load balancer.
          urls: () => (home === 'A' && a ? [a.url, b.url] : [b.url]),
          token: u.accessToken,
          roomId,
          tag: `ik${i}`,
          intervalMs: opts.intervalMs,
          ackTimeoutMs: opts.ackTimeoutMs,
          window: opts.window,
          ledger,
        }),
      );
    }
    log(`${users.length} clients (half on A, half on B) sending; a watcher on B`);
    for (let cycle = 1; cycle <= opts.cycles; cycle++) {
      await sleep(opts.warmupMs);
      const acksBefore = ledger.acknowledged;
      const victim = current();
      victim.proc.kill('SIGKILL');
      const killedAt = Date.now();
      a = undefined;
      log(`cycle ${cycle}: instance A SIGKILLed after ${acksBefore} acks`);
      await sleep(opts.downMs);
      a = await startServer(main, env);
      const downFor = ((Date.now() - killedAt) / 1000).toFixed(1);
      log(`cycle ${cycle}: A restarted as ${a.url} after ${downFor} s; its clients move back`);
      // As a load balancer would: A's clients (now on B) reconnect to the new A, mid-stream.
      senders.forEach((s, i) => i % 2 === 0 && s.rehome());
      notes.push(`cycle ${cycle}: A down ${downFor} s`);
      await sleep(opts.afterMs);
    }
    log('stopping new sends; draining retries');
    await Promise.all(senders.map((s) => s.stop(DRAIN_MS)));
    await sleep(500);
    const got = await resync(w.socket, roomId, w.cursor);
    const missing = checkResync(ledger, got, problems, 'watcher on B');
    const liveMissing = [...ledger.messages.values()].filter(
      (m) => m.ackedId !== undefined && !w.live.has(m.ackedId),
    ).length;
    notes.push(
      `watcher on B: ${w.live.size} live, ${liveMissing} acked not seen live (recovered by resync: ${liveMissing - missing}), ${w.liveDuplicates()} live duplicates`,
    );
    if (w.liveDuplicates())
      problems.push(`watcher got ${w.liveDuplicates()} duplicate live events`);
    if (b.proc.exitCode !== null) problems.push('instance B died');
    w.socket.close();
    if (ledger.timeouts)
      notes.push(`${ledger.timeouts} sends unanswered by the dying instance, retried`);
    const unexpected = [...ledger.errors.keys()].filter((c) => c !== 'UNAVAILABLE');
    if (unexpected.length) problems.push(`unexpected error codes: ${unexpected.join(', ')}`);
    const rows = await storedRows(pg.url, [roomId]);
    return verdict(name, ledger, rows, { problems, notes });
  } finally {
    for (const s of senders) s.close();
    await Promise.all([a?.stop(), b.stop()]);
    await redis.kill();
    pg.destroy();
  }
}

// --- redis-restart -------------------------------------------------------------------------

async function redisRestart(): Promise<Verdict> {
  const name = 'redis-restart';
  const { pg, redis, a, b, users, watcherUser, roomId } = await twoInstances('rr');
  const senders: Sender[] = [];
  const problems: string[] = [];
  const notes: string[] = [];
  try {
    const w = await watcher(b.url, watcherUser.accessToken, roomId);
    const ready = new ReadinessMonitor(() => [a.url, b.url]);
    const ledger = new Ledger();
    for (const [i, u] of users.entries()) {
      const home = i % 2 ? b.url : a.url;
      senders.push(
        new Sender({
          urls: () => [home],
          token: u.accessToken,
          roomId,
          tag: `rr${i}`,
          intervalMs: opts.intervalMs,
          ackTimeoutMs: opts.ackTimeoutMs,
          window: opts.window,
          ledger,
        }),
      );
    }
    log(`${users.length} clients (half on A, half on B) sending; a watcher on B`);
    for (let cycle = 1; cycle <= opts.cycles; cycle++) {
      await sleep(opts.warmupMs);
      const errorsBefore = [...ledger.errors.values()].reduce((x, y) => x + y, 0);
      const acksBefore = ledger.acknowledged;
      await redis.kill();
      const downAt = Date.now();
      log(`cycle ${cycle}: redis-server SIGKILLed after ${acksBefore} acks`);
      await sleep(opts.downMs);
      const acksDuring = ledger.acknowledged - acksBefore;
      const upAt = Date.now();
      await redis.start();
      const readyIn = await until(
        async () =>
          (await fetch(`${a.url}/health/ready`)).status === 200 &&
          (await fetch(`${b.url}/health/ready`)).status === 200,
        60_000,
        'both instances ready',
      ).catch(() => -1);
      // Cross-instance delivery is back: a message acked on A reaches the watcher on B live.
      const crossIn = await until(
        () =>
          [...ledger.messages.entries()].some(
            ([id, m]) =>
              m.ackedAt &&
              m.ackedAt > upAt + readyIn &&
              id.startsWith('rr0-') &&
              w.live.has(m.ackedId!),
          ),
        30_000,
        'live delivery A → B',
        50,
      ).catch(() => -1);
      const outage = ready.between(downAt + 1500, upAt);
      const notReady = outage.filter((s) => s.status === 503).length;
      const errorsDuring = [...ledger.errors.values()].reduce((x, y) => x + y, 0) - errorsBefore;
      log(
        `cycle ${cycle}: Redis down ${((upAt - downAt) / 1000).toFixed(1)} s; ${acksDuring} sends acked meanwhile, ${errorsDuring} error acks; ` +
          `/health/ready 503 in ${notReady}/${outage.length} polls; both ready ${readyIn} ms after restart; live A→B again after ${crossIn} ms`,
      );
      notes.push(
        `cycle ${cycle}: ${acksDuring} acks during the outage, ready 503 ${notReady}/${outage.length}, ready again ${readyIn} ms, live A→B after ${crossIn} ms`,
      );
      if (acksDuring === 0) problems.push(`cycle ${cycle}: no send succeeded while Redis was down`);
      if (!outage.length || notReady !== outage.length)
        problems.push(
          `cycle ${cycle}: /health/ready was 503 in ${notReady} of ${outage.length} polls`,
        );
      if (readyIn < 0) problems.push(`cycle ${cycle}: not ready again`);
      if (crossIn < 0) problems.push(`cycle ${cycle}: live delivery A → B did not come back`);
      await sleep(opts.afterMs);
    }
    log('stopping new sends; draining retries');
    await Promise.all(senders.map((s) => s.stop(DRAIN_MS)));
    await ready.stop();
    await sleep(500);
    const got = await resync(w.socket, roomId, w.cursor);
    const missing = checkResync(ledger, got, problems, 'watcher on B');
    const liveMissing = [...ledger.messages.values()].filter(
      (m) => m.ackedId !== undefined && !w.live.has(m.ackedId),
    ).length;
    notes.push(
      `watcher on B: ${liveMissing} acked not seen live (the outage), all recovered by resync: ${missing === 0}`,
    );
    if (w.liveDuplicates())
      problems.push(`watcher got ${w.liveDuplicates()} duplicate live events`);
    w.socket.close();
    if (ledger.errors.size) problems.push(`error acks: ${[...ledger.errors.keys()].join(', ')}`);
    if (ledger.timeouts) problems.push(`${ledger.timeouts} send(s) hung`);
    if (a.proc.exitCode !== null || b.proc.exitCode !== null) problems.push('an instance died');
    const rows = await storedRows(pg.url, [roomId]);
    return verdict(name, ledger, rows, { problems, notes });
  } finally {
    for (const s of senders) s.close();
    await Promise.all([a.stop(), b.stop()]);
    await redis.kill();
    pg.destroy();
  }
}

const DRILLS: Record<string, () => Promise<Verdict>> = {
  'postgres-kill': postgresKill,
  'instance-kill': instanceKill,
  'redis-restart': redisRestart,
};

async function runAll(): Promise<number> {
  const names = positionals[0] === 'all' ? Object.keys(DRILLS) : positionals;
  const unknown = names.filter((n) => !DRILLS[n]);
  if (!names.length || unknown.length) {
    process.stderr.write(
      `usage: npm run drill -- <${Object.keys(DRILLS).join('|')}|all> [--clients 4] [--interval 50] ` +
        `[--warmup 5] [--down 6] [--after 8] [--cycles 2] [--window 4] [--ack-timeout 10000] [--verbose]\n`,
    );
    return 2;
  }
  log('compiling the server (tsc) into .test-build/drill');
  main = join(buildServer('drill'), 'src', 'main.js');
  const verdicts: Verdict[] = [];
  for (const n of names) {
    log(`=== drill ${n}`);
    try {
      verdicts.push(await DRILLS[n]());
    } catch (err) {
      verdicts.push({
        name: n,
        ok: false,
        line: `VERDICT ${n}: FAIL (the drill itself failed: ${(err as Error).stack ?? String(err)})`,
        counts: {},
      });
    }
    log(verdicts[verdicts.length - 1].line);
  }
  process.stdout.write('\n' + verdicts.map((v) => v.line).join('\n') + '\n');
  return verdicts.every((v) => v.ok) ? 0 : 1;
}

runAll()
  .then((code) => {
    killChildren();
    process.exit(code);
  })
  .catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    killChildren();
    process.exit(1);
  });
