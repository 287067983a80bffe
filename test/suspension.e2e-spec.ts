import { DataSource } from 'typeorm';
import { startApp, TestApp } from './support/app';
import { AccessPolicy } from '../src/access/access.policy';
import { ADMIN_ENV, join, loginAdmin, newRoom, newUser, TestUser } from './support/factories';
import { connect, disconnected, next, sleep } from './support/socket';

const api = (path: string) => `/api/v1${path}`;

/** Global suspension (issue 14): admins suspend a user for a while, with a reason. */
describe('global suspension (e2e)', () => {
  let t: TestApp;
  let db: DataSource;
  let admin: TestUser;

  beforeAll(async () => {
    t = await startApp(ADMIN_ENV);
    db = t.app.get(DataSource);
    admin = await loginAdmin(t);
  });
  afterAll(() => t.close());

  const suspend = (who: TestUser, id: string, body: object) =>
    t
      .http()
      .post(api(`/users/${id}/suspension`))
      .set(who.auth)
      .send(body);
  const login = (u: TestUser) =>
    t.http().post(api('/auth/login')).send({ username: u.username, password: u.password });
  const audit = (targetId: string) =>
    db.query<{ action: string; actor_id: string; reason: string; details: unknown }[]>(
      `SELECT action, actor_id, reason, details FROM audit_log WHERE target_id = $1 ORDER BY id`,
      [targetId],
    );

  it('ends every session at once (live socket told `suspended`), and login and refresh say why and until when', async () => {
    const bob = await newUser(t);
    const socket = await connect(t, bob.accessToken);
    const revoked = next(socket, 'session.revoked');
    const gone = disconnected(socket);

    const res = await suspend(admin, bob.id, { durationSec: 3600, reason: 'Spamming' }).expect(200);
    expect(res.body).toMatchObject({ id: bob.id, suspensionReason: 'Spamming' });
    const until = new Date(res.body.suspendedUntil as string).getTime();
    expect(until).toBeGreaterThan(Date.now() + 3500_000);
    expect(until).toBeLessThan(Date.now() + 3700_000);

    expect(await revoked).toEqual({ reason: 'suspended' });
    await gone;
    await t.http().get(api('/auth/me')).set(bob.auth).expect(401);
    await expect(connect(t, bob.accessToken)).rejects.toThrow();

    const refused = await login(bob).expect(403);
    expect(refused.body).toMatchObject({
      code: 'FORBIDDEN',
      details: { reason: 'Spamming', until: res.body.suspendedUntil },
    });
    expect(refused.body.message).toContain('Spamming');
    const refresh = await t
      .http()
      .post(api('/auth/refresh'))
      .send({ refreshToken: bob.refreshToken })
      .expect(403);
    expect(refresh.body).toMatchObject({ code: 'FORBIDDEN', details: { reason: 'Spamming' } });

    // A wrong password learns nothing about the suspension.
    const wrong = await t
      .http()
      .post(api('/auth/login'))
      .send({ username: bob.username, password: 'not-the-password' })
      .expect(401);
    expect(wrong.body.details).toBeUndefined();

    // Admins see it in the user listing.
    let found: Record<string, unknown> | undefined;
    let after: string | undefined;
    do {
      const page = await t
        .http()
        .get(api('/users'))
        .query({ limit: 200, ...(after ? { after } : {}) })
        .set(admin.auth)
        .expect(200);
      found = (page.body.items as Record<string, unknown>[]).find((u) => u.id === bob.id);
      after = page.body.nextCursor ?? undefined;
    } while (!found && after);
    expect(found).toMatchObject({
      suspendedUntil: res.body.suspendedUntil,
      suspensionReason: 'Spamming',
    });

    expect(await audit(bob.id)).toEqual([
      {
        action: 'user.suspend',
        actor_id: admin.id,
        reason: 'Spamming',
        details: { until: res.body.suspendedUntil, durationSec: 3600 },
      },
    ]);
  });

  it('a suspended user reads nothing (socket re-checks, pushes), yet can still be banned', async () => {
    const carl = await newUser(t);
    const room = await newRoom(t, admin);
    await join(t, carl, room.id);
    const access = t.app.get(AccessPolicy);
    expect(await access.readableRooms(carl.id, [room.id])).toEqual(new Set([room.id]));
    await suspend(admin, carl.id, { durationSec: 3600, reason: 'Cool down' }).expect(200);
    // What a socket's re-check and the push worker ask: a suspended user reads nothing.
    expect(await access.readableRooms(carl.id, [room.id])).toEqual(new Set());
    // Still a user moderators can act on: banned from the room while suspended.
    await t
      .http()
      .post(api(`/rooms/${room.id}/bans`))
      .set(admin.auth)
      .send({ userId: carl.id, reason: 'also here' })
      .expect(201);
    await t
      .http()
      .delete(api(`/users/${carl.id}/suspension`))
      .set(admin.auth)
      .expect(200);
    await t
      .http()
      .delete(api(`/rooms/${room.id}/bans/${carl.id}`))
      .set(admin.auth)
      .expect(204);
    await t
      .http()
      .post(api(`/rooms/${room.id}/members`))
      .set(admin.auth)
      .send({ userId: carl.id })
      .expect(201);
    expect(await access.readableRooms(carl.id, [room.id])).toEqual(new Set([room.id]));
  });

  it('ends by itself: login works again after the end, without any sessions coming back', async () => {
    const carol = await newUser(t);
    await suspend(admin, carol.id, { durationSec: 1, reason: 'Cool down' }).expect(200);
    await login(carol).expect(403);
    await t.http().get(api('/auth/me')).set(carol.auth).expect(401);
    const deadline = Date.now() + 10_000;
    let status = 403;
    while (status === 403 && Date.now() < deadline) {
      await sleep(200);
      status = (await login(carol)).status;
    }
    expect(status).toBe(200);
    // The sessions the suspension ended stay ended.
    await t.http().get(api('/auth/me')).set(carol.auth).expect(401);
  });

  it('is lifted by an admin (audited once); lifting when none holds changes nothing', async () => {
    const dave = await newUser(t);
    await suspend(admin, dave.id, { durationSec: 3600, reason: 'Oops' }).expect(200);
    await login(dave).expect(403);
    const lifted = await t
      .http()
      .delete(api(`/users/${dave.id}/suspension`))
      .set(admin.auth)
      .expect(200);
    expect(lifted.body.suspendedUntil).toBeUndefined();
    await login(dave).expect(200);
    await t
      .http()
      .delete(api(`/users/${dave.id}/suspension`))
      .set(admin.auth)
      .expect(200);
    expect((await audit(dave.id)).map((r) => r.action)).toEqual(['user.suspend', 'user.unsuspend']);
  });

  it('refuses non-admins, admins as targets, unknown users and bad input', async () => {
    const eve = await newUser(t);
    const frank = await newUser(t);
    await suspend(eve, frank.id, { durationSec: 60, reason: 'no' }).expect(403);
    await t
      .http()
      .delete(api(`/users/${frank.id}/suspension`))
      .set(eve.auth)
      .expect(403);
    const self = await suspend(admin, admin.id, { durationSec: 60, reason: 'me' }).expect(403);
    expect(self.body.message).toBe('Admins cannot be suspended');
    await suspend(admin, '00000000-0000-4000-8000-000000000000', {
      durationSec: 60,
      reason: 'x',
    }).expect(404);
    for (const body of [
      { durationSec: 0, reason: 'x' },
      { durationSec: 60 },
      { durationSec: 60, reason: '' },
      { durationSec: 1.5, reason: 'x' },
      { durationSec: 60, reason: 'x'.repeat(501) },
    ]) {
      await suspend(admin, frank.id, body).expect(400);
    }
    await login(frank).expect(200);
    expect(await audit(frank.id)).toEqual([]);
  });
});
