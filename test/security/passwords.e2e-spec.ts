import * as bcrypt from 'bcrypt';
import { randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { startApp, type TestApp } from '../support/app';
import { newUser, uniqueName } from '../support/factories';

/**
 * Passwords (OWASP ASVS 5 V6): at least 8 characters, long and Unicode passphrases accepted,
 * nothing bcrypt would silently truncate (> 72 bytes), throttled guessing, no user enumeration.
 * (test/auth.e2e-spec.ts › signup already checks 'short', 37 × 'é' and a 34-character Cyrillic
 * passphrase; this suite covers the exact edges, emoji, login, and enumeration.)
 */
describe('security: passwords', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp();
  });
  afterAll(() => t.close());

  const signup = (password: unknown) => {
    const username = uniqueName();
    return t
      .http()
      .post('/api/v1/auth/signup')
      .send({ username, email: `${username}@example.com`, password });
  };

  it.each([
    ['exactly 8 ASCII characters', '8chars!!'],
    ['64 ASCII characters', 'a'.repeat(64)],
    ['72 bytes exactly (ASCII)', 'b'.repeat(72)],
    ['36 × é = 72 bytes', 'é'.repeat(36)],
    [
      '64+ characters of mixed scripts within 72 bytes',
      'pass word 密码 パスワード ' + 'x'.repeat(35),
    ],
    ['18 emoji = 72 bytes', '🔑'.repeat(18)],
    ['spaces only', ' '.repeat(8)],
  ])('accepts %s, and the same password logs in', async (_, password) => {
    const res = await signup(password);
    expect(res.status).toBe(201);
    await t
      .http()
      .post('/api/v1/auth/login')
      .send({ username: res.body.user.username, password })
      .expect(200);
  });

  it.each([
    ['7 characters', '7chars!'],
    ['73 bytes (ASCII)', 'c'.repeat(73)],
    ['37 × é = 74 bytes', 'é'.repeat(37)],
    ['19 emoji = 76 bytes', '🔑'.repeat(19)],
    ['64 emoji (64 code points, 256 bytes)', '🔑'.repeat(64)],
    ['a number', 12345678],
    ['an array', ['12345678']],
    ['an object', { $ne: null }],
  ])('rejects %s with 400 on password', async (_, password) => {
    const res = await signup(password);
    expect(res.status).toBe(400);
    expect(res.body.details).toHaveProperty('password');
  });

  it('a 73-byte password that shares its first 72 bytes with the real one does not log in (no truncation)', async () => {
    const password = 'd'.repeat(72);
    const res = await signup(password);
    expect(res.status).toBe(201);
    const login = await t
      .http()
      .post('/api/v1/auth/login')
      .send({ username: res.body.user.username, password: password + 'X' });
    expect(login.status).toBe(401);
  });

  it('no enumeration by message: unknown user, wrong password and disabled-looking answers are identical', async () => {
    const u = await newUser(t);
    const unknown = await t
      .http()
      .post('/api/v1/auth/login')
      .send({ username: 'nobody_' + randomBytes(4).toString('hex'), password: 'whatever-1' });
    const wrong = await t
      .http()
      .post('/api/v1/auth/login')
      .send({ username: u.username, password: 'whatever-1' });
    expect(unknown.status).toBe(401);
    expect(wrong.status).toBe(401);
    expect(unknown.body).toEqual(wrong.body);
  });
});

describe('security: password guessing is throttled', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ AUTH_THROTTLE_USER_LIMIT: '5', AUTH_THROTTLE_IP_LIMIT: '12' });
  });
  afterAll(() => t.close());

  it('per IP: many usernames from one address hit 429 with Retry-After; the right password is throttled too', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 14; i++) {
      const res = await t
        .http()
        .post('/api/v1/auth/login')
        .send({ username: `spray${i}`, password: 'Winter2026!' });
      codes.push(res.status);
      if (res.status === 429) expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    }
    expect(codes.slice(0, 12).every((c) => c === 401)).toBe(true);
    expect(codes.slice(12)).toEqual([429, 429]);
  });
});

describe('security: password change is throttled per user', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ AUTH_THROTTLE_USER_LIMIT: '3', AUTH_THROTTLE_IP_LIMIT: '100' });
  });
  afterAll(() => t.close());

  it('guessing the current password through POST /auth/password stops at the per-user limit', async () => {
    const u = await newUser(t);
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await t
        .http()
        .post('/api/v1/auth/password')
        .set(u.auth)
        .send({ currentPassword: `guess-${i}-guess`, newPassword: 'new-password-1' });
      statuses.push(res.status);
    }
    expect(statuses).toEqual([400, 400, 400, 429, 429]);
  });
});

describe('security: no user enumeration by timing', () => {
  let t: TestApp;
  // A realistic cost, so the bcrypt comparison dominates as in production (cost 12 there).
  beforeAll(async () => {
    t = await startApp({ BCRYPT_COST: '9' });
  });
  afterAll(() => t.close());

  it('mean login time for an unknown user and for a known user with a wrong password differ by far less than one bcrypt', async () => {
    const u = await newUser(t);
    const time = async (username: string) => {
      const t0 = process.hrtime.bigint();
      const res = await t
        .http()
        .post('/api/v1/auth/login')
        .send({ username, password: 'wrong-password-1' });
      expect(res.status).toBe(401);
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
    // Warm-up (the dummy hash for unknown users is made once, lazily).
    await time('nobody_warmup');
    await time(u.username);
    const N = 20;
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    // Up to 3 rounds: a burst of load from a parallel test worker can skew one round, but a
    // real leak (no dummy comparison: an unknown user answers a whole bcrypt sooner) shows in
    // every round.
    let gap = Infinity;
    let bcryptMs = 0;
    for (let round = 1; round <= 3 && gap >= bcryptMs * 0.25; round++) {
      const known: number[] = [];
      const unknown: number[] = [];
      for (let i = 0; i < N; i++) {
        // Interleaved, so machine noise hits both series alike.
        known.push(await time(u.username));
        unknown.push(await time(`nobody_${round}_${i}_${randomBytes(3).toString('hex')}`));
      }
      gap = Math.abs(median(known) - median(unknown));
      bcryptMs = median(known);
      console.log(
        `login timing, round ${round}, over ${N} tries each: known user ${mean(known).toFixed(1)} ms mean / ${median(known).toFixed(1)} ms median, ` +
          `unknown user ${mean(unknown).toFixed(1)} ms mean / ${median(unknown).toFixed(1)} ms median, gap ${gap.toFixed(1)} ms`,
      );
    }
    // Without the dummy comparison the gap would be the whole bcrypt time (an unknown user
    // would answer almost at once); with it, the gap is noise.
    expect(gap).toBeLessThan(bcryptMs * 0.25);
  }, 60_000);
});

/**
 * Medians of N interleaved timings (so machine noise hits every series alike): a wrong password
 * for each of `usernames`, a wrong password for unknown users, and one cost-9 bcrypt compare.
 */
async function loginTimings(t: TestApp, usernames: string[], N = 9) {
  const time = async (name: string) => {
    const t0 = process.hrtime.bigint();
    const res = await t
      .http()
      .post('/api/v1/auth/login')
      .send({ username: name, password: 'wrong-password-1' });
    expect(res.status).toBe(401);
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  const cost9 = await bcrypt.hash('reference', 9);
  const compare9 = async () => {
    const t0 = process.hrtime.bigint();
    await bcrypt.compare('wrong-password-1', cost9);
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  await time('nobody_warmup');
  for (const name of usernames) await time(name);
  const known: number[][] = usernames.map(() => []);
  const [unknown, reference]: number[][] = [[], []];
  for (let i = 0; i < N; i++) {
    for (const [k, name] of usernames.entries()) known[k].push(await time(name));
    unknown.push(await time(`nobody_${i}_${randomBytes(3).toString('hex')}`));
    reference.push(await compare9());
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return { known: known.map(median), unknown: median(unknown), compare9: median(reference), N };
}

/**
 * After BCRYPT_COST is raised (users made at cost 4, the server restarted at cost 9), a wrong
 * password for such a user used to cost a cost-4 compare (~1 ms) while an unknown user cost a
 * cost-9 one: timing told who has an account. Now every failure costs at least one compare at
 * the configured cost, and a successful login rehashes the password at that cost.
 */
describe('security: login timing after BCRYPT_COST is raised', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ BCRYPT_COST: '9' });
  });
  afterAll(() => t.close());

  /** A user whose stored hash is cost 4, as if made before the cost was raised. */
  const legacyUser = async () => {
    const u = await newUser(t);
    await t.app
      .get(DataSource)
      .query('UPDATE users SET password_hash = $1 WHERE id = $2', [
        await bcrypt.hash(u.password, 4),
        u.id,
      ]);
    return u;
  };
  const storedCost = async (id: string) => {
    const [row] = await t.app
      .get(DataSource)
      .query<{ password_hash: string }[]>('SELECT password_hash FROM users WHERE id = $1', [id]);
    return bcrypt.getRounds(row.password_hash);
  };

  it('a successful login rehashes a cost-4 password at the configured cost; it still logs in', async () => {
    const u = await legacyUser();
    expect(await storedCost(u.id)).toBe(4);
    const login = (password: string) =>
      t.http().post('/api/v1/auth/login').send({ username: u.username, password });
    await login('wrong-password-1').expect(401);
    expect(await storedCost(u.id)).toBe(4); // a failed login changes nothing
    await login(u.password).expect(200);
    expect(await storedCost(u.id)).toBe(9);
    await login(u.password).expect(200);
    await login('wrong-password-1').expect(401);
  });

  it('wrong password for a cost-4 user and an unknown user take about the same time, both about a cost-9 compare', async () => {
    const u = await legacyUser();
    const {
      known: [k],
      unknown: n,
      compare9: r,
      N,
    } = await loginTimings(t, [u.username]);
    console.log(
      `login timing, cost-4 hashes under BCRYPT_COST=9 (medians of ${N}): wrong password ${k.toFixed(1)} ms, ` +
        `unknown user ${n.toFixed(1)} ms, one cost-9 compare ${r.toFixed(1)} ms`,
    );
    // Before the fix: wrong password ≈ a cost-4 compare (a few ms), unknown user ≈ r.
    expect(Math.max(k, n) / Math.min(k, n)).toBeLessThan(3);
    expect(k).toBeGreaterThan(r * 0.4);
    expect(n).toBeGreaterThan(r * 0.4);
  }, 60_000);
});

/**
 * After BCRYPT_COST is lowered (users made at cost 10, the server restarted at cost 4), a wrong
 * password for such a user cost a cost-10 compare while an unknown user cost a cost-4 one: timing
 * told who has an account. Now every failure pays one compare at each cost in use (4 and 10): the
 * three take the same time. (Few tries: this file runs beside others on a busy CI host.)
 */
describe('security: login timing after BCRYPT_COST is lowered', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ BCRYPT_COST: '4' });
  });
  afterAll(() => t.close());

  it('wrong password for a cost-10 user, for a cost-4 user and an unknown user take the same time', async () => {
    const [old, fresh] = [await newUser(t), await newUser(t)];
    for (const [u, cost] of [
      [old, 10],
      [fresh, 4],
    ] as const) {
      await t.app
        .get(DataSource)
        .query('UPDATE users SET password_hash = $1 WHERE id = $2', [
          await bcrypt.hash(u.password, cost),
          u.id,
        ]);
    }
    const timed = await loginTimings(t, [old.username, fresh.username], 11);
    const series = { oldHash: timed.known[0], newHash: timed.known[1], unknown: timed.unknown };
    console.log(
      `login timing, BCRYPT_COST=4 with cost-10 hashes stored (medians of 11, interleaved): ` +
        Object.entries(series)
          .map(([k, v]) => `${k} ${v.toFixed(1)} ms`)
          .join(', '),
    );
    // Before: unknown ≈ one cost-4 compare plus the request (about a seventh of the others).
    // Now each is one compare at 4 and one at 10. The margin is for a busy CI host (runs
    // there measured × 1.13 and × 1.55 between equal series); the intermediate version (a
    // dummy at the dearest cost only: a cost-4 account paid 4 + 10 against 10, × 1.25 for 10
    // against 12) is below what a timing test can tell apart; the one-compare-per-cost rule in
    // AuthService.login is what keeps it out.
    const values = Object.values(series);
    expect(Math.max(...values) / Math.min(...values)).toBeLessThan(2);
  }, 90_000);
});
