import { jest } from '@jest/globals';
import * as bcrypt from 'bcrypt';
import { DataSource } from 'typeorm';
import { AuthService } from '../../src/auth/auth.service';
import type { AccessClaims } from '../../src/auth/auth-user';
import { SocketSessionsService } from '../../src/chat/socket-sessions.service';
import { type ChatServer, sessionChannel } from '../../src/chat/types';
import { UserStore } from '../../src/users/user.store';
import { UsersService } from '../../src/users/users.service';
import { startApp, TestApp } from '../support/app';
import { ADMIN_ENV, loginAdmin, newRoom, newUser, TestUser } from '../support/factories';
import {
  call,
  type ClientSocket,
  connect,
  disconnected,
  ok,
  record,
  sleep,
} from '../support/socket';
import { claimsOf } from './support';

const api = (path: string) => `/api/v1${path}`;

/** Review probes (issue 12): races around sessions and memberships. */
describe('trust: session and membership races', () => {
  let t: TestApp;
  let admin: TestUser;
  beforeAll(async () => {
    t = await startApp(ADMIN_ENV);
    admin = await loginAdmin(t);
  });
  afterAll(() => t.close());

  const setDisabled = (id: string, disabled: boolean) =>
    t
      .http()
      .patch(api(`/users/${id}`))
      .set(admin.auth)
      .send({ disabled })
      .expect(200);

  it('login racing disable: no session obtained then survives a re-enable', async () => {
    let survivors = 0;
    let issued = 0;
    for (let round = 0; round < 5; round++) {
      const u = await newUser(t);
      const logins = Array.from({ length: 30 }, async (_, i) => {
        await sleep(i * 2);
        return t
          .http()
          .post(api('/auth/login'))
          .send({ username: u.username, password: u.password });
      });
      await sleep(25);
      await setDisabled(u.id, true);
      const results = await Promise.all(logins);
      await setDisabled(u.id, false);
      for (const r of results) {
        if (r.status !== 200) continue;
        issued++;
        const me = await t
          .http()
          .get(api('/auth/me'))
          .set({ Authorization: `Bearer ${r.body.accessToken as string}` });
        if (me.status === 200) survivors++;
      }
    }
    expect({ issued, survivors }).toMatchObject({ survivors: 0 }); // issued: how many raced
  });

  it('login with the old password racing a password change: no session survives it', async () => {
    let survivors = 0;
    let issued = 0;
    for (let round = 0; round < 5; round++) {
      const u = await newUser(t);
      const logins = Array.from({ length: 30 }, async (_, i) => {
        await sleep(i * 2);
        return t
          .http()
          .post(api('/auth/login'))
          .send({ username: u.username, password: u.password });
      });
      await sleep(25);
      await t
        .http()
        .post(api('/auth/password'))
        .set(u.auth)
        .send({ currentPassword: u.password, newPassword: `${u.password}-new` })
        .expect((r) => {
          if (r.status >= 300) throw new Error(`password change: ${r.status}`);
        });
      const results = await Promise.all(logins);
      for (const r of results) {
        if (r.status !== 200) continue;
        issued++;
        const me = await t
          .http()
          .get(api('/auth/me'))
          .set({ Authorization: `Bearer ${r.body.accessToken as string}` });
        if (me.status === 200) survivors++;
      }
    }
    expect({ issued, survivors }).toMatchObject({ survivors: 0 }); // issued: how many raced
  });

  it('handshake racing disable: no socket stays connected', async () => {
    let survivors = 0;
    for (let round = 0; round < 5; round++) {
      const u = await newUser(t);
      const sockets: ClientSocket[] = [];
      const attempts = Array.from({ length: 10 }, async (_, i) => {
        await sleep(i * 3);
        try {
          sockets.push(await connect(t, u.accessToken));
        } catch {
          /* refused: fine */
        }
      });
      await sleep(12);
      await setDisabled(u.id, true);
      await Promise.all(attempts);
      await sleep(300);
      survivors += sockets.filter((s) => s.connected).length;
      for (const s of sockets) s.close();
      await setDisabled(u.id, false);
    }
    expect(survivors).toBe(0);
  });

  it("auth.refresh racing the new session's logout: the socket is not left on a dead session", async () => {
    const u = await newUser(t);
    const s = await connect(t, u.accessToken);
    await sleep(100); // the connection's own re-check is done
    const b = await t
      .http()
      .post(api('/auth/login'))
      .send({ username: u.username, password: u.password })
      .expect(200);
    const sidB = claimsOf(b.body.accessToken as string).sid;
    // Session B ends the moment its check has passed, before the socket could hear of it.
    const auth = t.app.get(AuthService);
    const check = auth.authenticateUntil.bind(auth);
    let raced = false;
    const spy = jest
      .spyOn(auth, 'authenticateUntil')
      .mockImplementation(async (claims: AccessClaims) => {
        const user = await check(claims);
        if (claims.sid === sidB && !raced) {
          raced = true;
          await t
            .http()
            .post(api('/auth/logout'))
            .set({ Authorization: `Bearer ${b.body.accessToken as string}` })
            .expect((r) => {
              if (r.status >= 300) throw new Error(`logout: ${r.status}`);
            });
        }
        return user;
      });
    try {
      const gone = disconnected(s, 3000);
      void call(s, 'auth.refresh', { accessToken: b.body.accessToken as string }).catch(
        () => undefined,
      );
      await gone;
      expect(raced).toBe(true);
    } finally {
      spy.mockRestore();
      s.close();
    }
  });

  it('two auth.refresh at once, for two sessions: the socket ends on one of them alone', async () => {
    const u = await newUser(t);
    const s = await connect(t, u.accessToken);
    await sleep(100); // the connection's own re-check is done
    const login = () =>
      t
        .http()
        .post(api('/auth/login'))
        .send({ username: u.username, password: u.password })
        .expect(200)
        .then((r) => r.body.accessToken as string);
    const [b, c] = [await login(), await login()];
    try {
      const acks = await Promise.all([
        call(s, 'auth.refresh', { accessToken: b }),
        call(s, 'auth.refresh', { accessToken: c }),
      ]);
      expect(acks.map((a) => a.ok)).toEqual([true, true]);
      // The server's side of the socket: subscribed to the revocations of the session it is
      // on, and of no other.
      const sessions: unknown = t.app.get(SocketSessionsService);
      const io = (sessions as { server: ChatServer }).server;
      const socket = io.of('/').sockets.get(s.id!)!;
      const on = socket.data.user.sessionId;
      expect([claimsOf(b).sid, claimsOf(c).sid]).toContain(on);
      expect([...socket.rooms].filter((r) => r.startsWith('session:'))).toEqual([
        sessionChannel(on),
      ]);
      // The session it started on no longer holds it.
      await t
        .http()
        .post(api('/auth/logout'))
        .set({ Authorization: `Bearer ${u.accessToken}` })
        .expect(204);
      await sleep(300);
      expect(s.connected).toBe(true);
    } finally {
      s.close();
    }
  });

  it('handshake racing member removal: no socket keeps receiving the private room', async () => {
    let leaks = 0;
    for (let round = 0; round < 5; round++) {
      const room = await newRoom(t, admin, { visibility: 'private' });
      const u = await newUser(t);
      await t
        .http()
        .post(api(`/rooms/${room.id}/members`))
        .set(admin.auth)
        .send({ userId: u.id })
        .expect(201);
      const sockets: ClientSocket[] = [];
      const attempts = Array.from({ length: 10 }, async (_, i) => {
        await sleep(i * 3);
        try {
          sockets.push(await connect(t, u.accessToken));
        } catch {
          /* refused */
        }
      });
      await sleep(12);
      await t
        .http()
        .delete(api(`/rooms/${room.id}/members/${u.id}`))
        .set(admin.auth)
        .expect(204);
      await Promise.all(attempts);
      const recs = sockets.map((s) => record(s, 'message.created'));
      await t
        .http()
        .post(api(`/rooms/${room.id}/messages`))
        .set(admin.auth)
        .send({ clientMsgId: `leak-${round}`, content: 'secret after removal' })
        .expect(201);
      await sleep(300);
      leaks += recs.filter((r) =>
        r.of('message.created').some((m) => m.content === 'secret after removal'),
      ).length;
      for (const s of sockets) s.close();
    }
    expect(leaks).toBe(0);
  });

  it('demotion racing room.join on a private room: no subscription left', async () => {
    let leaks = 0;
    for (let round = 0; round < 8; round++) {
      const room = await newRoom(t, admin, { visibility: 'private' });
      const a2 = await newUser(t);
      await t
        .http()
        .patch(api(`/users/${a2.id}`))
        .set(admin.auth)
        .send({ role: 'admin' })
        .expect(200);
      const s = await connect(t, a2.accessToken);
      const rec = record(s, 'message.created');
      const joins = Array.from({ length: 5 }, async (_, i) => {
        await sleep(i * 2);
        return ok(s, 'room.join', { roomId: room.id }).catch(() => null);
      });
      await sleep(4);
      await t
        .http()
        .patch(api(`/users/${a2.id}`))
        .set(admin.auth)
        .send({ role: 'user' })
        .expect(200);
      await Promise.all(joins);
      await sleep(100);
      await t
        .http()
        .post(api(`/rooms/${room.id}/messages`))
        .set(admin.auth)
        .send({ clientMsgId: `demote-${round}`, content: 'after demotion' })
        .expect(201);
      await sleep(200);
      if (rec.of('message.created').some((m) => m.content === 'after demotion')) leaks++;
      s.close();
    }
    expect(leaks).toBe(0);
  });

  /**
   * Both requests past their checks before either writes: each waits (up to 2 s) at `method`
   * for the other to get there too, then goes on to its transaction.
   */
  function meetAt<T extends object>(target: T, method: keyof T & string) {
    const real = (target[method] as (...a: unknown[]) => unknown).bind(target);
    let arrived = 0;
    let release = () => {};
    const both = new Promise<void>((resolve) => (release = resolve));
    return jest.spyOn(target, method as never).mockImplementation((async (...args: unknown[]) => {
      if (++arrived === 2) release();
      await Promise.race([both, sleep(2000)]);
      return real(...args);
    }) as never);
  }

  it('two admins demoting each other at once: one of them stays an admin', async () => {
    const [a, b] = [await newUser(t), await newUser(t)];
    for (const u of [a, b]) {
      await t
        .http()
        .patch(api(`/users/${u.id}`))
        .set(admin.auth)
        .send({ role: 'admin' })
        .expect(200);
    }
    const spy = meetAt(t.app.get(UserStore), 'transaction');
    try {
      const [ab, ba] = await Promise.all([
        t
          .http()
          .patch(api(`/users/${b.id}`))
          .set(a.auth)
          .send({ role: 'user' }),
        t
          .http()
          .patch(api(`/users/${a.id}`))
          .set(b.auth)
          .send({ role: 'user' }),
      ]);
      expect([ab.status, ba.status].sort()).toEqual([200, 403]);
    } finally {
      spy.mockRestore();
    }
    const roles = await Promise.all(
      [a, b].map(
        async (u) =>
          (
            await t
              .http()
              .get(api(`/users/${u.id}`))
              .set(admin.auth)
              .expect(200)
          ).body.role as string,
      ),
    );
    expect(roles.sort()).toEqual(['admin', 'user']);
  });

  it('two password changes at once (two devices): one wins, the other is 409, the winner stays signed in', async () => {
    const u = await newUser(t);
    const other = (
      await t
        .http()
        .post(api('/auth/login'))
        .send({ username: u.username, password: u.password })
        .expect(200)
    ).body as { accessToken: string };
    const spy = meetAt(t.app.get(UsersService), 'findByIdWithPassword');
    const change = (token: string, to: string) =>
      t
        .http()
        .post(api('/auth/password'))
        .set({ Authorization: `Bearer ${token}` })
        .send({ currentPassword: u.password, newPassword: to });
    let results;
    try {
      results = await Promise.all([
        change(u.accessToken, `${u.password}-first`),
        change(other.accessToken, `${u.password}-second`),
      ]);
    } finally {
      spy.mockRestore();
    }
    expect(results.map((r) => r.status).sort()).toEqual([204, 409]);
    const won = results.findIndex((r) => r.status === 204);
    const [token, password] =
      won === 0
        ? [u.accessToken, `${u.password}-first`]
        : [other.accessToken, `${u.password}-second`];
    await t
      .http()
      .get(api('/auth/me'))
      .set({ Authorization: `Bearer ${token}` })
      .expect(200);
    await t.http().post(api('/auth/login')).send({ username: u.username, password }).expect(200);
  });
  it("a password change racing a login's rehash of the same password is no conflict", async () => {
    const u = await newUser(t);
    const db = t.app.get(DataSource);
    const storedCost = async () =>
      (
        await db.query<{ h: string }[]>('SELECT password_hash AS h FROM users WHERE id = $1', [
          u.id,
        ])
      )[0].h.split('$')[2];
    // A hash at another cost than the configured one: the next login rehashes it.
    await db.query('UPDATE users SET password_hash = $1 WHERE id = $2', [
      await bcrypt.hash(u.password, 5),
      u.id,
    ]);
    const users = t.app.get(UsersService);
    const read = users.findByIdWithPassword.bind(users);
    let rehashedTo = '';
    // The change reads the cost-5 hash; a login (another device) rehashes it before the change
    // writes.
    const spy = jest.spyOn(users, 'findByIdWithPassword').mockImplementationOnce(async (id) => {
      const found = await read(id);
      await t
        .http()
        .post(api('/auth/login'))
        .send({ username: u.username, password: u.password })
        .expect(200);
      rehashedTo = await storedCost();
      return found;
    });
    try {
      await t
        .http()
        .post(api('/auth/password'))
        .set(u.auth)
        .send({ currentPassword: u.password, newPassword: `${u.password}-new` })
        .expect(204);
    } finally {
      spy.mockRestore();
    }
    expect(rehashedTo).toBe('04'); // the tests' BCRYPT_COST
    await t
      .http()
      .post(api('/auth/login'))
      .send({ username: u.username, password: `${u.password}-new` })
      .expect(200);
    await t
      .http()
      .post(api('/auth/login'))
      .send({ username: u.username, password: u.password })
      .expect(401);
  });
});
