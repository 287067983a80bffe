/**
 * Soak: `npm run soak -- --minutes 30 [--clients 8] [--rate 0]`. One built server on a private
 * PostgreSQL; first a short closed-loop probe measures the sustainable send rate, then clients
 * send open-loop at half of it (or --rate msgs/s) for the given minutes, retrying until acked.
 * Every minute: RSS of the server process, event-loop lag (from /metrics), acks, errors.
 * Verdict: RSS growth after warm-up < 10 %, zero error acks, zero lost or duplicated acks.
 * Not in CI; figures go to docs/reliability.md.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildServer, killChildren, startServer } from '../support/server-process';
import { PrivatePostgres, sleep } from './infra';
import { Ledger, login, pct, publicRoom, Sender, signup, storedRows, verdict } from './traffic';

const { values: flags } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    clients: { type: 'string', default: '8' },
    rate: { type: 'string', default: '0' },
    probe: { type: 'string', default: '15' },
  },
});
const minutes = Number(flags.minutes);
const clients = Number(flags.clients);
const t0 = Date.now();
const log = (m: string) =>
  process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(5)} s] ${m}\n`);

const rssMb = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

async function lagMs(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m =
    /^nodejs_eventloop_lag_p99_seconds (\S+)/m.exec(text) ??
    /^nodejs_eventloop_lag_seconds (\S+)/m.exec(text);
  return m ? Number(m[1]) * 1000 : NaN;
}

async function main(): Promise<number> {
  log('compiling the server');
  const serverMain = join(buildServer('soak'), 'src', 'main.js');
  const pg = await PrivatePostgres.create();
  pg.start();
  const admin = { username: 'soak_admin', email: 'soak@example.com', password: 'soak-admin-pw-1' };
  const server = await startServer(serverMain, {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    PORT: '0',
    BCRYPT_COST: '4',
    DATABASE_URL: pg.url,
    JWT_SECRET: 'soak-secret-soak-secret-soak-secret-0123456',
    ACCESS_TOKEN_TTL: '12h',
    ADMIN_USERNAME: admin.username,
    ADMIN_EMAIL: admin.email,
    ADMIN_PASSWORD: admin.password,
    RATE_LIMIT_SEND: '1000000',
    RATE_LIMIT_EDIT: '1000000',
    RATE_LIMIT_REACT: '1000000',
    RATE_LIMIT_ROOMS: '1000000',
    RATE_LIMIT_TYPING: '1000000',
    RATE_LIMIT_READ: '1000000',
    USER_MAX_INFLIGHT: '1000000',
  });
  const pid = server.proc.pid!;
  try {
    const url = server.url;
    const users = await Promise.all(
      Array.from({ length: clients }, (_, i) => signup(url, 'soak', i)),
    );
    const roomId = await publicRoom(url, await login(url, admin.username, admin.password), users);
    // 1. Probe: closed loop (one in flight per client, no pause) for --probe seconds.
    const probeLedger = new Ledger();
    const probe = users.map(
      (u, i) =>
        new Sender({
          urls: () => [url],
          token: u.accessToken,
          roomId,
          tag: `probe${i}`,
          intervalMs: 0,
          ackTimeoutMs: 10_000,
          ledger: probeLedger,
        }),
    );
    await sleep(Number(flags.probe) * 1000);
    await Promise.all(probe.map((s) => s.stop(30_000)));
    probe.forEach((s) => s.close());
    const maxRate = probeLedger.acknowledged / Number(flags.probe);
    const rate = Number(flags.rate) || maxRate / 2;
    log(
      `probe: ${maxRate.toFixed(0)} acked sends/s closed-loop with ${clients} clients; soaking at ${rate.toFixed(0)}/s for ${minutes} min`,
    );
    // 2. Soak, open loop at `rate`.
    const ledger = new Ledger();
    const senders = users.map(
      (u, i) =>
        new Sender({
          urls: () => [url],
          token: u.accessToken,
          roomId,
          tag: `soak${i}`,
          intervalMs: (1000 * clients) / rate,
          ackTimeoutMs: 10_000,
          ledger,
          window: 4,
        }),
    );
    const rows: {
      minute: number;
      rss: number;
      lag: number;
      acks: number;
      errors: number;
      p99: number;
    }[] = [];
    let lastAcks = 0;
    for (let minute = 1; minute <= minutes; minute++) {
      await sleep(60_000);
      const acks = ledger.acknowledged;
      const errors = [...ledger.errors.values()].reduce((a, b) => a + b, 0) + ledger.timeouts;
      const recent = [...ledger.messages.values()].filter(
        (m) => m.ackedAt && m.ackedAt > Date.now() - 60_000,
      ).length;
      const row = {
        minute,
        rss: rssMb(pid),
        lag: await lagMs(url),
        acks: acks - lastAcks,
        errors,
        p99: recent,
      };
      lastAcks = acks;
      rows.push(row);
      log(
        `minute ${minute}: RSS ${row.rss.toFixed(1)} MB, event-loop lag ${row.lag.toFixed(1)} ms, ${row.acks} acks (${(row.acks / 60).toFixed(0)}/s), errors so far ${row.errors}`,
      );
    }
    await Promise.all(senders.map((s) => s.stop(60_000)));
    senders.forEach((s) => s.close());
    const warm = rows[Math.min(1, rows.length - 1)];
    const last = rows[rows.length - 1];
    const growth = warm ? ((last.rss - warm.rss) / warm.rss) * 100 : 0;
    const problems: string[] = [];
    if (rows.length >= 3 && growth >= 10)
      problems.push(`RSS grew ${growth.toFixed(1)} % after warm-up`);
    if (ledger.errors.size || ledger.timeouts)
      problems.push(`error acks ${[...ledger.errors].join(',')} timeouts ${ledger.timeouts}`);
    if (server.proc.exitCode !== null) problems.push('server died');
    const lags = rows.map((r) => r.lag);
    const v = verdict('soak', ledger, await storedRows(pg.url, [roomId]), {
      problems,
      notes: [
        `${minutes} min at ${rate.toFixed(0)}/s (probe max ${maxRate.toFixed(0)}/s)`,
        `RSS ${rows.map((r) => r.rss.toFixed(0)).join('→')} MB (growth after minute 2: ${growth.toFixed(1)} %)`,
        `event-loop lag p99 per minute max ${Math.max(...lags).toFixed(1)} ms, median ${pct(lags, 50).toFixed(1)} ms`,
      ],
    });
    process.stdout.write(`\n${v.line}\n`);
    return v.ok ? 0 : 1;
  } finally {
    await server.stop();
    pg.destroy();
  }
}

main()
  .then((code) => {
    killChildren();
    process.exit(code);
  })
  .catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    killChildren();
    process.exit(1);
  });
