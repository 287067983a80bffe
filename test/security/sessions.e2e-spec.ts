import { EventEmitter2 } from '@nestjs/event-emitter';
import { DataSource } from 'typeorm';
import { startApp, type TestApp } from '../support/app';
import { ADMIN_ENV, loginAdmin, newUser, type TestUser } from '../support/factories';
import { type ClientSocket, connect, disconnected, next, ok, sleep } from '../support/socket';
import { restVerdict, socketVerdict } from './support';

/**
 * Session lifetime: a refresh-token family ends on reuse, logout, password change or when the
 * user is disabled, and the end reaches REST and live sockets at once.
 * Already shown elsewhere (not repeated): logout disconnects a live socket and a disabled
 * user's sockets close (test/gateway.e2e-spec.ts › handshake); REST refresh reuse revokes the
 * family (test/auth.e2e-spec.ts › sessions).
 */
describe('security: sessions', () => {
  let t: TestApp;
  const sockets: ClientSocket[] = [];
  const open = async (token: string) => {
    const s = await connect(t, token);
    sockets.push(s);
    return s;
  };
  const login = async (u: TestUser, password = u.password) => {
    const res = await t
      .http()
      .post('/api/v1/auth/login')
      .send({ username: u.username, password })
      .expect(200);
    return res.body as { accessToken: string; refreshToken: string };
  };

  beforeAll(async () => {
    t = await startApp(ADMIN_ENV);
  });
  afterEach(() => {
    for (const s of sockets.splice(0)) s.close();
  });
  afterAll(() => t.close());

  it('refresh-token reuse ends the family on the socket too: live sockets of that session close with refresh_reuse', async () => {
    const u = await newUser(t);
    const pair = await t
      .http()
      .post('/api/v1/auth/refresh')
      .send({ refreshToken: u.refreshToken })
      .expect(200);
    const s = await open(pair.body.accessToken);
    const revoked = next(s, 'session.revoked');
    const gone = disconnected(s);
    // The old (rotated) refresh token comes back: theft is assumed.
    await t.http().post('/api/v1/auth/refresh').send({ refreshToken: u.refreshToken }).expect(401);
    expect(await revoked).toEqual({ reason: 'refresh_reuse' });
    await gone;
    expect((await restVerdict(t, pair.body.accessToken)).status).toBe(401);
    expect(await socketVerdict(t, pair.body.accessToken)).toBe('UNAUTHORIZED');
    await t
      .http()
      .post('/api/v1/auth/refresh')
      .send({ refreshToken: pair.body.refreshToken })
      .expect(401);
  });

  it("after auth.refresh to another session, that session's logout closes the socket", async () => {
    const u = await newUser(t);
    const s = await open(u.accessToken);
    const b = await login(u);
    await ok(s, 'auth.refresh', { accessToken: b.accessToken });
    const revoked = next(s, 'session.revoked');
    const gone = disconnected(s);
    // The first session's end no longer concerns the socket…
    await t
      .http()
      .post('/api/v1/auth/logout')
      .set({ Authorization: `Bearer ${u.accessToken}` })
      .expect((r) => expect(r.status).toBeLessThan(300));
    await sleep(200);
    expect(s.connected).toBe(true);
    // …the second's does.
    await t
      .http()
      .post('/api/v1/auth/logout')
      .set({ Authorization: `Bearer ${b.accessToken}` })
      .expect((r) => expect(r.status).toBeLessThan(300));
    expect(await revoked).toEqual({ reason: 'logout' });
    await gone;
  });

  it('logout ends only that session: another device of the same user keeps working', async () => {
    const u = await newUser(t);
    const other = await login(u);
    const s = await open(other.accessToken);
    await t.http().post('/api/v1/auth/logout').set(u.auth).expect(204);
    expect((await restVerdict(t, u.accessToken)).status).toBe(401);
    expect(await socketVerdict(t, u.accessToken)).toBe('UNAUTHORIZED');
    expect((await restVerdict(t, other.accessToken)).status).toBe(200);
    expect(s.connected).toBe(true);
    await t.http().post('/api/v1/auth/refresh').send({ refreshToken: u.refreshToken }).expect(401);
  });

  describe('password change (POST /auth/password)', () => {
    it('ends every other session on REST and sockets; this one stays; the old password stops working', async () => {
      const u = await newUser(t);
      const other = await login(u);
      const [mine, theirs] = [await open(u.accessToken), await open(other.accessToken)];
      const revoked = next(theirs, 'session.revoked');
      const gone = disconnected(theirs);
      await t
        .http()
        .post('/api/v1/auth/password')
        .set(u.auth)
        .send({ currentPassword: u.password, newPassword: 'a brand new passphrase' })
        .expect(204);
      expect(await revoked).toEqual({ reason: 'password_changed' });
      await gone;
      expect((await restVerdict(t, other.accessToken)).status).toBe(401);
      expect(await socketVerdict(t, other.accessToken)).toBe('UNAUTHORIZED');
      await t
        .http()
        .post('/api/v1/auth/refresh')
        .send({ refreshToken: other.refreshToken })
        .expect(401);
      // The session that changed the password stays signed in, socket included.
      expect((await restVerdict(t, u.accessToken)).status).toBe(200);
      expect(mine.connected).toBe(true);
      await t
        .http()
        .post('/api/v1/auth/refresh')
        .send({ refreshToken: u.refreshToken })
        .expect(200);
      // Old password refused, new one accepted.
      await t
        .http()
        .post('/api/v1/auth/login')
        .send({ username: u.username, password: u.password })
        .expect(401);
      await login(u, 'a brand new passphrase');
    });

    it('needs the right current password, a valid new one that differs, and a live session', async () => {
      const u = await newUser(t);
      const change = (body: object, token = u.accessToken) =>
        t
          .http()
          .post('/api/v1/auth/password')
          .set({ Authorization: `Bearer ${token}` })
          .send(body);
      const wrong = await change({
        currentPassword: 'not-my-password',
        newPassword: 'x'.repeat(12),
      });
      expect(wrong.status).toBe(400);
      expect(Object.keys(wrong.body.details)).toEqual(['currentPassword']);
      const same = await change({ currentPassword: u.password, newPassword: u.password });
      expect(same.status).toBe(400);
      expect(Object.keys(same.body.details)).toEqual(['newPassword']);
      for (const newPassword of ['short', 'é'.repeat(37), 12345678, null]) {
        const res = await change({ currentPassword: u.password, newPassword });
        expect(res.status).toBe(400);
        expect(res.body.details).toHaveProperty('newPassword');
      }
      expect(
        (await change({ currentPassword: u.password, newPassword: 'fine-password', role: 'admin' }))
          .status,
      ).toBe(400);
      expect((await t.http().post('/api/v1/auth/password').send({})).status).toBe(401);
      // Nothing above changed the password.
      await login(u);
    });
  });

  it('an admin disabling a user ends REST access and refresh at once (sockets: test/gateway.e2e-spec.ts)', async () => {
    const admin = await loginAdmin(t);
    const u = await newUser(t);
    await t
      .http()
      .patch(`/api/v1/users/${u.id}`)
      .set(admin.auth)
      .send({ disabled: true })
      .expect(200);
    expect((await restVerdict(t, u.accessToken)).status).toBe(401);
    expect(await socketVerdict(t, u.accessToken)).toBe('UNAUTHORIZED');
    await t.http().post('/api/v1/auth/refresh').send({ refreshToken: u.refreshToken }).expect(401);
  });

  it('disable then re-enable brings no old session back: REST, refresh and socket all refuse the old tokens', async () => {
    const admin = await loginAdmin(t);
    const u = await newUser(t);
    const other = await login(u);
    const s = await open(u.accessToken);
    const revoked = next(s, 'session.revoked');
    const gone = disconnected(s);
    const patch = (body: object) =>
      t.http().patch(`/api/v1/users/${u.id}`).set(admin.auth).send(body).expect(200);
    await patch({ disabled: true });
    expect(await revoked).toEqual({ reason: 'user_disabled' });
    await gone;
    // The sessions themselves ended, with the reason, not only gated on the flag.
    const rows = await t.app
      .get(DataSource)
      .query<{ revoked_at: Date | null; revoked_reason: string | null }[]>(
        'SELECT revoked_at, revoked_reason FROM sessions WHERE user_id = $1',
        [u.id],
      );
    expect(rows).toHaveLength(2);
    for (const row of rows) {
      expect(row.revoked_at).not.toBeNull();
      expect(row.revoked_reason).toBe('user_disabled');
    }
    await patch({ disabled: false });
    for (const pair of [u, other]) {
      expect((await restVerdict(t, pair.accessToken)).status).toBe(401);
      expect(await socketVerdict(t, pair.accessToken)).toBe('UNAUTHORIZED');
      await t
        .http()
        .post('/api/v1/auth/refresh')
        .send({ refreshToken: pair.refreshToken })
        .expect(401);
    }
    // The re-enabled user signs in again with a new session.
    const fresh = await login(u);
    expect((await restVerdict(t, fresh.accessToken)).status).toBe(200);
  });

  it('a role change emits user.role.changed (once, only when the role changes)', async () => {
    const admin = await loginAdmin(t);
    const u = await newUser(t);
    const seen: unknown[] = [];
    const listener = (payload: unknown) => seen.push(payload);
    const emitter = t.app.get(EventEmitter2);
    emitter.on('user.role.changed', listener);
    try {
      const patch = (body: object) =>
        t.http().patch(`/api/v1/users/${u.id}`).set(admin.auth).send(body).expect(200);
      await patch({ role: 'admin' });
      await patch({ role: 'admin' });
      await patch({ disabled: false });
      await patch({ role: 'user' });
      expect(seen).toEqual([
        { userId: u.id, role: 'admin' },
        { userId: u.id, role: 'user' },
      ]);
    } finally {
      emitter.off('user.role.changed', listener);
    }
  });
});
