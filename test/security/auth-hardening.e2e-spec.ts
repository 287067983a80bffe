import { randomBytes } from 'node:crypto';
import { startApp, type TestApp } from '../support/app';
import { newUser, uniqueName } from '../support/factories';

const signupBody = (password: string, email?: string) => {
  const username = uniqueName();
  return { username, email: email ?? `${username}@example.com`, password };
};

/** Passwords with NUL, one account per email however it is normalised. */
describe('security: password and email edge cases', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp();
  });
  afterAll(() => t.close());

  it.each([
    ['only NUL characters', '\0'.repeat(8)],
    ['a NUL inside', 'password\0suffix'],
    ['a trailing NUL', 'long-password\0'],
  ])(
    'refuses a password of %s at signup and at password change (bcrypt stops at NUL)',
    async (_, password) => {
      const res = await t.http().post('/api/v1/auth/signup').send(signupBody(password));
      expect(res.status).toBe(400);
      expect(res.body.details).toHaveProperty('password');
      const u = await newUser(t);
      const change = await t
        .http()
        .post('/api/v1/auth/password')
        .set(u.auth)
        .send({ currentPassword: u.password, newPassword: password });
      expect(change.status).toBe(400);
      expect(change.body.details).toHaveProperty('newPassword');
    },
  );

  it('a password with NUL never logs in, even as "the real password + \\0…"', async () => {
    const u = await newUser(t);
    const res = await t
      .http()
      .post('/api/v1/auth/login')
      .send({ username: u.username, password: `${u.password}\0extra` });
    expect(res.status).toBe(401);
  });

  it('the same email in NFC and NFD (and any case) is one account, and logs in either way', async () => {
    const local = `jos\u00e9.${randomBytes(3).toString('hex')}`; // é precomposed (NFC)
    const nfc = `${local}@example.com`;
    const nfd = nfc.normalize('NFD').toUpperCase(); // e + combining acute, upper case
    expect(nfd).not.toBe(nfc);
    const first = await t.http().post('/api/v1/auth/signup').send(signupBody('password-one', nfc));
    expect(first.status).toBe(201);
    expect(first.body.user.email).toBe(nfc);
    const second = await t.http().post('/api/v1/auth/signup').send(signupBody('password-two', nfd));
    expect(second.status).toBe(409);
    // The other way round: an account made with the NFD spelling is stored as NFC.
    const local2 = `ren\u00e9e.${randomBytes(3).toString('hex')}@example.com`;
    const third = await t
      .http()
      .post('/api/v1/auth/signup')
      .send(signupBody('password-3', local2.normalize('NFD')));
    expect(third.status).toBe(201);
    expect(third.body.user.email).toBe(local2);
    for (const username of [nfc, nfd, nfc.normalize('NFD')]) {
      await t
        .http()
        .post('/api/v1/auth/login')
        .send({ username, password: 'password-one' })
        .expect(200);
    }
  });
});

/**
 * The per-account throttle counts per (account, client IP): an attacker guessing from one
 * address is stopped, and the owner, from another address, still signs in. Client addresses
 * come from X-Forwarded-For, believed from the trusted proxy (loopback by default).
 */
describe('security: the login throttle does not lock the owner out', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ AUTH_THROTTLE_USER_LIMIT: '3', AUTH_THROTTLE_IP_LIMIT: '100' });
  });
  afterAll(() => t.close());

  const login = (ip: string, username: string, password: string) =>
    t.http().post('/api/v1/auth/login').set('X-Forwarded-For', ip).send({ username, password });

  it("an attacker's failures from one address do not stop the owner from another", async () => {
    const owner = await newUser(t);
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      statuses.push((await login('203.0.113.7', owner.username, `guess-${i}-guess`)).status);
    }
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    // The attacker stays throttled for that account, even with the right password…
    expect((await login('203.0.113.7', owner.username, owner.password)).status).toBe(429);
    // …whatever the case the account is typed in.
    expect(
      (await login('203.0.113.7', `${owner.username.toUpperCase()}`, owner.password)).status,
    ).toBe(429);
    // The owner, elsewhere, signs in.
    expect((await login('198.51.100.20', owner.username, owner.password)).status).toBe(200);
  });

  it('"İ" (U+0130) is no way around it: the throttle and the lookup name the account alike', async () => {
    const owner = await newUser(t, { username: uniqueName('alice') });
    for (let i = 0; i < 3; i++)
      expect((await login('203.0.113.8', owner.username, `guess-${i}-guess`)).status).toBe(401);
    expect((await login('203.0.113.8', owner.username, owner.password)).status).toBe(429);
    // JavaScript lower-cases "İ" to "i" + U+0307, PostgreSQL's lower() to "i": keyed one way
    // and looked up the other, "alİce" was a fresh throttle bucket that signed in as "alice".
    const dotted = owner.username.replace('i', '\u0130');
    expect(dotted).not.toBe(owner.username);
    expect((await login('203.0.113.8', dotted, owner.password)).status).toBe(401);
    // The Kelvin sign lower-cases to an ASCII "k" everywhere: the same account, the same bucket.
    const kelvin = (await newUser(t, { username: uniqueName('kate') })).username;
    for (let i = 0; i < 3; i++) await login('203.0.113.8', kelvin, `guess-${i}-guess`);
    expect((await login('203.0.113.8', kelvin.replace('k', '\u212a'), 'x-guess-x')).status).toBe(
      429,
    );
  });
});

describe('security: TRUST_PROXY', () => {
  const spray = async (t: TestApp) => {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await t
        .http()
        .post('/api/v1/auth/login')
        .set('X-Forwarded-For', `203.0.113.${i + 1}`)
        .send({ username: `nobody_${i}`, password: 'wrong-password' });
      statuses.push(res.status);
    }
    return statuses;
  };

  it('by default (loopback) X-Forwarded-For from the local proxy names the client; with TRUST_PROXY=false it is ignored', async () => {
    const env = { AUTH_THROTTLE_USER_LIMIT: '100', AUTH_THROTTLE_IP_LIMIT: '3' };
    const trusting = await startApp(env);
    try {
      // Four clients behind the proxy: four per-IP buckets.
      expect(await spray(trusting)).toEqual([401, 401, 401, 401]);
    } finally {
      await trusting.close();
    }
    const direct = await startApp({ ...env, TRUST_PROXY: 'false' });
    try {
      // No trusted proxy: the peer is the client, whatever X-Forwarded-For claims.
      expect(await spray(direct)).toEqual([401, 401, 401, 429]);
    } finally {
      await direct.close();
    }
  }, 60_000); // two apps booted: on a busy CI host 30 s was once not enough
});

/** helmet's headers on the API and the documentation pages; no-store on auth answers. */
describe('security: response headers', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp();
  });
  afterAll(() => t.close());

  it.each([
    ['/api/v1/auth/me', 401],
    ['/api/v1/rooms', 401],
    ['/health', 200],
    ['/docs', 200],
    ['/docs/asyncapi', 200],
    ['/docs-json', 200],
  ])('%s: nosniff and frame protection', async (path, status) => {
    const res = await t.http().get(path).redirects(1);
    expect(res.status).toBe(status);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-frame-options']).toBe('DENY');
    expect(res.headers['content-security-policy']).toContain("frame-ancestors 'none'");
  });

  it('Swagger UI and the AsyncAPI page load under the Content-Security-Policy', async () => {
    const docs = await t.http().get('/docs').redirects(1);
    const csp = String(docs.headers['content-security-policy']);
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self' 'unsafe-inline'");
    expect(csp).toContain("img-src 'self' data:");
    expect(csp).not.toContain('upgrade-insecure-requests');
    // Every script of the page is a same-origin file (no inline script the policy would block)…
    const html = docs.text;
    const scripts = [...html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.length).toBeGreaterThan(0);
    for (const [, attrs, body] of scripts) {
      const src = /src=["']([^"']+)["']/.exec(attrs)?.[1];
      expect(src).toBeDefined();
      expect(src).not.toMatch(/^(https?:)?\/\//);
      expect(body.trim()).toBe('');
      // …and each is served.
      const url = new URL(src!, `${t.url}/docs`).pathname;
      const js = await t.http().get(url);
      expect(js.status).toBe(200);
    }
    const asyncapi = await t.http().get('/docs/asyncapi');
    expect(asyncapi.text).not.toMatch(/<script/i);
  });

  it('signup, login, refresh, me and their errors send Cache-Control: no-store', async () => {
    const body = signupBody('password-1');
    const signup = await t.http().post('/api/v1/auth/signup').send(body).expect(201);
    const login = await t
      .http()
      .post('/api/v1/auth/login')
      .send({ username: body.username, password: body.password })
      .expect(200);
    const refresh = await t
      .http()
      .post('/api/v1/auth/refresh')
      .send({ refreshToken: login.body.refreshToken })
      .expect(200);
    const me = await t
      .http()
      .get('/api/v1/auth/me')
      .set({ Authorization: `Bearer ${refresh.body.accessToken}` })
      .expect(200);
    const failed = await t
      .http()
      .post('/api/v1/auth/login')
      .send({ username: body.username, password: 'wrong-password' })
      .expect(401);
    for (const res of [signup, login, refresh, me, failed]) {
      expect(res.headers['cache-control']).toBe('no-store');
    }
  });
});
