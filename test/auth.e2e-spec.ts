import { jest } from '@jest/globals';
import * as bcrypt from 'bcrypt';
import { createHmac } from 'node:crypto';
import { DataSource } from 'typeorm';
import { UsersService } from '../src/users/users.service';
import { startApp, TestApp } from './support/app';
import { ADMIN, ADMIN_ENV, loginAdmin, newUser, uniqueName } from './support/factories';
import { call, connect, record, sleep } from './support/socket';

const SECRET = 'test-secret-test-secret-test-secret-0123456789';

function b64url(obj: object): string {
  return Buffer.from(JSON.stringify(obj)).toString('base64url');
}
/** Hand-made JWTs for the attacks (no library that would refuse to make them). */
function forge(header: object, payload: object, key = SECRET): string {
  const data = `${b64url(header)}.${b64url(payload)}`;
  return `${data}.${createHmac('sha256', key).update(data).digest('base64url')}`;
}
function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as Record<
    string,
    unknown
  >;
}

describe('auth (e2e)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp(ADMIN_ENV);
  });
  afterAll(() => t.close());

  describe('signup', () => {
    it('creates a user, returns tokens, and never an admin', async () => {
      const username = uniqueName();
      const res = await t
        .http()
        .post('/api/v1/auth/signup')
        .send({ username, email: `${username}@example.com`, password: 'long enough' })
        .expect(201);
      expect(res.body).toMatchObject({
        tokenType: 'Bearer',
        expiresIn: 900,
        user: { username, role: 'user' },
      });
      expect(res.body.user.passwordHash).toBeUndefined();
      expect(res.headers['x-request-id']).toBeTruthy();
    });

    it('is also reachable as /auth/register', async () => {
      const username = uniqueName();
      await t
        .http()
        .post('/api/v1/auth/register')
        .send({ username, email: `${username}@x.io`, password: 'password1' })
        .expect(201);
    });

    it.each([
      ['short password', { password: 'short' }, 'password'],
      ['password over 72 bytes', { password: 'é'.repeat(37) }, 'password'],
      ['bad email', { email: 'not-an-email' }, 'email'],
      ['bad username', { username: 'a b' }, 'username'],
      ['extra role field', { role: 'admin' }, 'role'],
    ])('rejects %s with 400 and per-field details', async (_, patch, field) => {
      const username = uniqueName();
      const res = await t
        .http()
        .post('/api/v1/auth/signup')
        .send({ username, email: `${username}@example.com`, password: 'password1', ...patch })
        .expect(400);
      expect(res.body).toMatchObject({ statusCode: 400, code: 'VALIDATION_FAILED' });
      expect(Object.keys(res.body.details)).toContain(field);
    });

    it('accepts a 64-character Unicode passphrase within 72 bytes, and 8 characters', async () => {
      const username = uniqueName();
      await t
        .http()
        .post('/api/v1/auth/signup')
        .send({
          username,
          email: `${username}@x.io`,
          password: 'пароль-пароль-пароль-пароль-пароль',
        })
        .expect(201);
      const u2 = uniqueName();
      await t
        .http()
        .post('/api/v1/auth/signup')
        .send({ username: u2, email: `${u2}@x.io`, password: '12345678' })
        .expect(201);
    });

    it('rejects a duplicate username in another case with 409', async () => {
      const user = await newUser(t);
      const res = await t
        .http()
        .post('/api/v1/auth/signup')
        .send({
          username: user.username.toUpperCase(),
          email: `other-${user.username}@example.com`,
          password: 'password1',
        })
        .expect(409);
      expect(res.body.code).toBe('CONFLICT');
    });
  });

  describe('login', () => {
    it('logs in by username or email, and rejects a wrong password without saying which part was wrong', async () => {
      const user = await newUser(t);
      await t
        .http()
        .post('/api/v1/auth/login')
        .send({ username: user.username, password: user.password })
        .expect(200);
      await t
        .http()
        .post('/api/v1/auth/login')
        .send({ username: `${user.username}@example.com`, password: user.password })
        .expect(200);
      const wrong = await t
        .http()
        .post('/api/v1/auth/login')
        .send({ username: user.username, password: 'wrong-password' })
        .expect(401);
      const unknown = await t
        .http()
        .post('/api/v1/auth/login')
        .send({ username: 'nobody-here', password: 'wrong-password' })
        .expect(401);
      expect(wrong.body).toEqual(unknown.body);
    });

    it('GET /auth/me returns the current user; without a token 401', async () => {
      const user = await newUser(t);
      const me = await t.http().get('/api/v1/auth/me').set(user.auth).expect(200);
      expect(me.body).toMatchObject({ id: user.id, username: user.username, role: 'user' });
      const anon = await t.http().get('/api/v1/auth/me').expect(401);
      expect(anon.body.code).toBe('UNAUTHORIZED');
    });
  });

  describe('sessions', () => {
    it('refresh rotates; reusing an old refresh token revokes the family, newest token included', async () => {
      const user = await newUser(t);
      const r1 = await t
        .http()
        .post('/api/v1/auth/refresh')
        .send({ refreshToken: user.refreshToken })
        .expect(200);
      expect(r1.body.refreshToken).not.toBe(user.refreshToken);
      const r2 = await t
        .http()
        .post('/api/v1/auth/refresh')
        .send({ refreshToken: r1.body.refreshToken })
        .expect(200);
      // Replay of the first (rotated) token: the whole family dies.
      await t
        .http()
        .post('/api/v1/auth/refresh')
        .send({ refreshToken: user.refreshToken })
        .expect(401);
      await t
        .http()
        .post('/api/v1/auth/refresh')
        .send({ refreshToken: r2.body.refreshToken })
        .expect(401);
      await t
        .http()
        .get('/api/v1/auth/me')
        .set({ Authorization: `Bearer ${r2.body.accessToken}` })
        .expect(401);
    });

    it('two concurrent refreshes with one token: at most one wins', async () => {
      const user = await newUser(t);
      const results = await Promise.all(
        [1, 2, 3].map(() =>
          t.http().post('/api/v1/auth/refresh').send({ refreshToken: user.refreshToken }),
        ),
      );
      expect(results.filter((r) => r.status === 200).length).toBeLessThanOrEqual(1);
    });

    it("a session's natural end is no theft: refresh answers 401 session expired, nothing is revoked", async () => {
      const user = await newUser(t);
      const sid = claimsOf(user.accessToken).sid as string;
      const socket = await connect(t, user.accessToken);
      const told = record(socket, 'session.revoked');
      // A rotation long after login: the session (fixed at login) ends before the token does.
      const rotated = await t
        .http()
        .post('/api/v1/auth/refresh')
        .send({ refreshToken: user.refreshToken })
        .expect(200);
      const db = t.app.get(DataSource);
      await db.query(`UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = $1`, [
        sid,
      ]);
      const res = await t
        .http()
        .post('/api/v1/auth/refresh')
        .send({ refreshToken: rotated.body.refreshToken })
        .expect(401);
      expect(res.body).toMatchObject({ code: 'UNAUTHORIZED', message: 'Session has expired' });
      const [row] = await db.query<{ revoked_reason: string | null }[]>(
        'SELECT revoked_reason FROM sessions WHERE id = $1',
        [sid],
      );
      expect(row.revoked_reason).toBeNull();
      await sleep(200);
      expect(told.events).toEqual([]);
      expect(socket.connected).toBe(true);
      socket.close();
    });

    it("a socket closes at its session's end, before its token's expiry; auth.refresh cannot move it past", async () => {
      const user = await newUser(t);
      const db = t.app.get(DataSource);
      // The session (fixed at login) has 5 s left; the access token's own lifetime is 900 s.
      const sid = claimsOf(user.accessToken).sid;
      await db.query(
        `UPDATE sessions SET expires_at = now() + interval '5 seconds' WHERE id = $1`,
        [sid],
      );
      const [{ end }] = await db.query<{ end: Date }[]>(
        `SELECT expires_at AS end FROM sessions WHERE id = $1`,
        [sid],
      );
      const endMs = new Date(end).getTime();
      const socket = await connect(t, user.accessToken);
      const told = record(socket, 'session.revoked');
      const closed = new Promise<number>((resolve) =>
        socket.once('disconnect', () => resolve(Date.now())),
      );
      const refreshed = await call(socket, 'auth.refresh', { accessToken: user.accessToken });
      expect(refreshed).toEqual({ ok: true, data: { expiresAt: endMs } });
      const at = await Promise.race([closed, sleep(10_000).then(() => 0)]);
      // Not before the end (a little slack for the two processes' clocks reading), and soon
      // after it, on a busy host too.
      expect(at).toBeGreaterThanOrEqual(endMs - 100);
      expect(at).toBeLessThan(endMs + 5000);
      expect(told.of('session.revoked')).toEqual([{ reason: 'token_expired' }]);
      await t.http().get('/api/v1/auth/me').set(user.auth).expect(401);
      socket.close();
    });

    it("an access token stops working at its session's end, not at its own expiry", async () => {
      const user = await newUser(t);
      await t.http().get('/api/v1/auth/me').set(user.auth).expect(200);
      await t.app
        .get(DataSource)
        .query(`UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = $1`, [
          claimsOf(user.accessToken).sid,
        ]);
      const res = await t.http().get('/api/v1/auth/me').set(user.auth).expect(401);
      expect(res.body.code).toBe('UNAUTHORIZED');
    });

    it('logout makes the access token fail at once', async () => {
      const user = await newUser(t);
      await t.http().post('/api/v1/auth/logout').set(user.auth).expect(204);
      const res = await t.http().get('/api/v1/auth/me').set(user.auth).expect(401);
      expect(res.body.code).toBe('UNAUTHORIZED');
      await t
        .http()
        .post('/api/v1/auth/refresh')
        .send({ refreshToken: user.refreshToken })
        .expect(401);
    });
  });

  describe('token rules', () => {
    let user: Awaited<ReturnType<typeof newUser>>;
    let claims: Record<string, unknown>;
    beforeAll(async () => {
      user = await newUser(t);
      claims = claimsOf(user.accessToken);
    });
    const me = (token: string) =>
      t
        .http()
        .get('/api/v1/auth/me')
        .set({ Authorization: `Bearer ${token}` });

    it('a well-formed forged token with the right key works (control)', async () => {
      await me(forge({ alg: 'HS256', typ: 'JWT' }, claims)).expect(200);
    });
    it('rejects alg: none', async () => {
      const data = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims)}.`;
      await me(data).expect(401);
    });
    it('rejects a token signed with another secret', async () => {
      await me(forge({ alg: 'HS256' }, claims, 'another-secret-another-secret-another')).expect(
        401,
      );
    });
    it('rejects HS512 even with the right key (algorithm pinned)', async () => {
      const data = `${b64url({ alg: 'HS512' })}.${b64url(claims)}`;
      await me(`${data}.${createHmac('sha512', SECRET).update(data).digest('base64url')}`).expect(
        401,
      );
    });
    it('rejects an expired token with TOKEN_EXPIRED', async () => {
      const now = Math.floor(Date.now() / 1000);
      const res = await me(
        forge({ alg: 'HS256' }, { ...claims, iat: now - 100, exp: now - 10 }),
      ).expect(401);
      expect(res.body.code).toBe('TOKEN_EXPIRED');
    });
    it('rejects wrong issuer and audience', async () => {
      await me(forge({ alg: 'HS256' }, { ...claims, iss: 'evil' })).expect(401);
      await me(forge({ alg: 'HS256' }, { ...claims, aud: 'evil' })).expect(401);
    });
    it('rejects a refresh token used as an access token', async () => {
      await me(user.refreshToken).expect(401);
    });
    it('rejects an access token used as a refresh token', async () => {
      await t
        .http()
        .post('/api/v1/auth/refresh')
        .send({ refreshToken: user.accessToken })
        .expect(401);
    });
  });

  describe('roles', () => {
    it('admin bootstrap from env: the admin can log in and list users; a user gets 403', async () => {
      const admin = await loginAdmin(t);
      const me = await t.http().get('/api/v1/auth/me').set(admin.auth).expect(200);
      expect(me.body).toMatchObject({ username: ADMIN.username, role: 'admin' });
      const list = await t.http().get('/api/v1/users').set(admin.auth).expect(200);
      expect(list.body.items.some((u: { username: string }) => u.username === ADMIN.username)).toBe(
        true,
      );
      const user = await newUser(t);
      const res = await t.http().get('/api/v1/users').set(user.auth).expect(403);
      expect(res.body.code).toBe('FORBIDDEN');
      await t
        .http()
        .patch(`/api/v1/users/${user.id}`)
        .set(user.auth)
        .send({ role: 'admin' })
        .expect(403);
      // null is not "leave unchanged": it is refused (it was a 500 NOT NULL violation)
      for (const body of [{ role: null }, { disabled: null }])
        await t.http().patch(`/api/v1/users/${user.id}`).set(admin.auth).send(body).expect(400);
    });

    it('a disabled user cannot log in and their live tokens stop working', async () => {
      const admin = await loginAdmin(t);
      const user = await newUser(t);
      await t
        .http()
        .patch(`/api/v1/users/${user.id}`)
        .set(admin.auth)
        .send({ disabled: true })
        .expect(200);
      await t
        .http()
        .post('/api/v1/auth/login')
        .send({ username: user.username, password: user.password })
        .expect(401);
      await t.http().get('/api/v1/auth/me').set(user.auth).expect(401);
    });

    it('a user sees public profiles; a bad id is a 400, a missing one 404', async () => {
      const a = await newUser(t);
      const b = await newUser(t);
      const res = await t.http().get(`/api/v1/users/${b.id}`).set(a.auth).expect(200);
      expect(res.body).toEqual({
        id: b.id,
        username: b.username,
        displayName: null,
        role: 'user',
        createdAt: expect.any(String),
      });
      await t.http().get('/api/v1/users/not-a-uuid').set(a.auth).expect(400);
      await t
        .http()
        .get('/api/v1/users/00000000-0000-4000-8000-000000000000')
        .set(a.auth)
        .expect(404);
    });
  });

  describe('docs and probes', () => {
    it('serves /health, /health/ready, /docs and /docs-json', async () => {
      await t.http().get('/health').expect(200);
      const ready = await t.http().get('/health/ready').expect(200);
      expect(ready.body.info.database.status).toBe('up');
      await t.http().get('/docs').redirects(1).expect(200);
      const doc = await t.http().get('/docs-json').expect(200);
      expect(Object.keys(doc.body.paths)).toEqual(
        expect.arrayContaining(['/api/v1/auth/login', '/api/v1/users/{id}']),
      );
    });
  });
});

describe('auth throttling (e2e)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ AUTH_THROTTLE_USER_LIMIT: '3', AUTH_THROTTLE_IP_LIMIT: '50' });
  });
  afterAll(() => t.close());

  it('answers 429 with Retry-After after repeated logins for one username', async () => {
    const user = await newUser(t);
    for (let i = 0; i < 3; i++) {
      await t
        .http()
        .post('/api/v1/auth/login')
        .send({ username: user.username, password: 'wrong-password' })
        .expect(401);
    }
    const res = await t
      .http()
      .post('/api/v1/auth/login')
      .send({ username: user.username, password: user.password })
      .expect(429);
    expect(res.body.code).toBe('RATE_LIMITED');
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
  });
});

describe('admin bootstrap (e2e)', () => {
  it('two replicas booting together: the one whose insert loses the race boots too', async () => {
    // This instance's exists() finds no admin; another replica inserts it right after, before
    // this one's insert.
    const spy = jest.spyOn(UsersService.prototype, 'exists').mockImplementationOnce(async function (
      this: UsersService,
      username: string,
    ) {
      await this.create({
        username,
        email: ADMIN.email,
        passwordHash: await bcrypt.hash(ADMIN.password, 4),
        role: 'admin',
      });
      return false;
    });
    let t: TestApp | undefined;
    try {
      t = await startApp(ADMIN_ENV);
      expect(spy).toHaveBeenCalled();
      const admin = await loginAdmin(t);
      const me = await t.http().get('/api/v1/auth/me').set(admin.auth).expect(200);
      expect(me.body).toMatchObject({ username: ADMIN.username, role: 'admin' });
    } finally {
      spy.mockRestore();
      await t?.close();
    }
  });
});
