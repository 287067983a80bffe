/**
 * login: POST /auth/login per second at the configured bcrypt cost, against raw bcrypt
 * compares per second on the same cores (a separate process doing nothing else), alternating
 * raw / Parlor rounds. Bounded in count and time.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { api, signupUsers } from '../lib/api';
import { type Percentiles, samplePercentiles } from '../lib/hist';
import { num, type Options, size } from '../lib/options';
import { saveResult } from '../lib/report';
import { BUILD } from '../lib/servers';
import { parlor, pgBackends, prepare } from '../lib/setup';
import { others } from '../lib/stepper';
import { Usage } from '../lib/usage';
import { fmt, log, mono, pool, Progress, ratio, sleep, table } from '../lib/util';

interface Round {
  round: number;
  rawPerSecond: number;
  rawHashes: number;
  loginsPerSecond: number;
  logins: number;
  failures: number;
  latency: Percentiles | null;
  serverCpu: number;
  postgresCpu: number;
  otherCpu: number | null;
}

function rawBcrypt(cost: number, concurrency: number, seconds: number, maxCount: number) {
  const out = execFileSync(
    process.execPath,
    [
      join(BUILD, 'bench', 'bcrypt-raw.js'),
      String(cost),
      String(concurrency),
      String(seconds),
      String(maxCount),
    ],
    { encoding: 'utf8', timeout: (seconds + 60) * 1000 },
  );
  return JSON.parse(out) as { hashes: number; ms: number; perSecond: number };
}

export async function login(o: Options): Promise<void> {
  const cost = num(o.raw, 'cost', 12);
  const seconds = num(o.raw, 'seconds', size(o, 15, 8, 2));
  const rounds = num(o.raw, 'rounds', size(o, 3, 2, 1));
  const concurrency = num(o.raw, 'concurrency', 8);
  const maxCount = num(o.raw, 'max', 5000);
  const userCount = num(o.raw, 'users', size(o, 16, 16, 4));

  const prep = await prepare(o);
  const server = await parlor(prep, 'parlor', { bcryptCost: cost });
  log(`  BCRYPT_COST=${cost}`);
  const users = await signupUsers(server.url, userCount, 4);
  // Warm-up: plans, pool connections, the dummy hash.
  await pool(users, 4, (u) =>
    api(server.url, 'POST', '/api/v1/auth/login', { username: u.username, password: u.password }),
  );

  const results: Round[] = [];
  for (let r = 1; r <= rounds; r++) {
    log(`\n== login round ${r}/${rounds} ==`);
    // Raw bcrypt: libuv's default 4 threads, like the server's bcrypt.compare.
    const raw = rawBcrypt(cost, 4, seconds, maxCount);
    log(
      `    raw bcrypt: ${fmt(raw.perSecond, 1)} compares/s (${raw.hashes} in ${fmt(raw.ms / 1000, 1)} s)`,
    );
    await sleep(500);
    const usage = new Usage(
      { server: [server.pid], postgres: await pgBackends(prep.db), harness: [process.pid] },
      async () => ({ postgres: await pgBackends(prep.db) }),
    );
    await usage.begin();
    const samples: number[] = [];
    let failures = 0;
    let started = 0;
    const t0 = mono();
    const deadline = t0 + seconds * 1000;
    const bar = new Progress('logins', Math.round(raw.perSecond * seconds), true);
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (mono() < deadline && started < maxCount) {
          const u = users[started++ % users.length];
          const t = mono();
          const res = await api(server.url, 'POST', '/api/v1/auth/login', {
            username: u.username,
            password: u.password,
          });
          if (res.status === 200) samples.push(mono() - t);
          else failures++;
          bar.update(samples.length);
        }
      }),
    );
    const ms = mono() - t0;
    bar.finish();
    const used = await usage.end();
    const round: Round = {
      round: r,
      rawPerSecond: raw.perSecond,
      rawHashes: raw.hashes,
      loginsPerSecond: (samples.length * 1000) / ms,
      logins: samples.length,
      failures,
      latency: samplePercentiles(samples),
      serverCpu: used.server.cpu,
      postgresCpu: used.postgres.cpu,
      otherCpu: others(used),
    };
    results.push(round);
    log(
      `    parlor: ${fmt(round.loginsPerSecond, 1)} logins/s (${samples.length} in ${fmt(ms / 1000, 1)} s, ${failures} failed)`,
    );
    await sleep(500);
  }

  const mean = (f: (r: Round) => number) => results.reduce((a, r) => a + f(r), 0) / results.length;
  const x = ratio(
    mean((r) => r.loginsPerSecond),
    mean((r) => r.rawPerSecond),
  );
  console.log(
    `\nlogin at BCRYPT_COST=${cost}, ${concurrency} concurrent (server ${prep.build.source}; target: logins/s ≥ 0.8× raw bcrypt/s)`,
  );
  console.log(
    table(
      [
        'round',
        'raw bcrypt/s',
        'logins/s',
        'ratio',
        'login p50 ms',
        'p99 ms',
        'failed',
        'srv CPU%',
        'pg CPU%',
        'other CPU%',
      ],
      [
        ...results.map((r) => [
          r.round,
          fmt(r.rawPerSecond, 2),
          fmt(r.loginsPerSecond, 2),
          fmt(ratio(r.loginsPerSecond, r.rawPerSecond), 2),
          fmt(r.latency?.p50, 0),
          fmt(r.latency?.p99, 0),
          r.failures,
          fmt(r.serverCpu, 0),
          fmt(r.postgresCpu, 0),
          fmt(r.otherCpu, 0),
        ]),
        [
          'mean',
          fmt(
            mean((r) => r.rawPerSecond),
            2,
          ),
          fmt(
            mean((r) => r.loginsPerSecond),
            2,
          ),
          `${fmt(x, 2)} ${x !== null && x >= 0.8 ? 'met' : 'MISSED'}`,
          '',
          '',
          '',
          '',
          '',
          '',
        ],
      ],
    ),
  );
  saveResult('login', {
    server: prep.build.source,
    options: { cost, seconds, rounds, concurrency, maxCount, users: userCount },
    ratio: x,
    rounds: results,
  });
}
