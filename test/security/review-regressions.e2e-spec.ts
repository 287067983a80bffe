import { startApp, TestApp } from '../support/app';
import { ADMIN_ENV, loginAdmin, newRoom, newUser, TestUser } from '../support/factories';
import { connect, record, sleep } from '../support/socket';

const api = (path: string) => `/api/v1${path}`;

/** Review probes (issue 12): event order, room update/delete race, throttle keying. */
describe('trust: more', () => {
  let t: TestApp;
  let admin: TestUser;
  beforeAll(async () => {
    t = await startApp(ADMIN_ENV);
    admin = await loginAdmin(t);
  });
  afterAll(() => t.close());

  it('an invited user’s open socket receives the "was added" notice live', async () => {
    const room = await newRoom(t, admin, { visibility: 'private' });
    const u = await newUser(t);
    const s = await connect(t, u.accessToken);
    const rec = record(s, 'member.joined', 'message.created');
    await t
      .http()
      .post(api(`/rooms/${room.id}/members`))
      .set(admin.auth)
      .send({ userId: u.id })
      .expect(201);
    await sleep(300);
    await t
      .http()
      .post(api(`/rooms/${room.id}/messages`))
      .set(admin.auth)
      .send({ clientMsgId: 'after-invite', content: 'hello new member' })
      .expect(201);
    await sleep(300);
    const notices = rec.of('message.created').map((m) => m.content);
    s.close();
    expect(notices.some((c) => c?.includes('was added by'))).toBe(true);
  });

  it('PATCH racing DELETE of a room never resurrects it, never 500s', async () => {
    let resurrected = 0;
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) {
      const room = await newRoom(t, admin);
      const [p, d] = await Promise.all([
        t
          .http()
          .patch(api(`/rooms/${room.id}`))
          .set(admin.auth)
          .send({ description: `d${i}` }),
        t
          .http()
          .delete(api(`/rooms/${room.id}`))
          .set(admin.auth),
      ]);
      statuses.push(p.status, d.status);
      const g = await t
        .http()
        .get(api(`/rooms/${room.id}`))
        .set(admin.auth);
      if (g.status === 200) resurrected++;
    }
    expect(resurrected).toBe(0);
    expect(statuses).not.toContain(500);
  });

  it('admin acting on their own conversation through /rooms keeps its old error code (400)', async () => {
    const persona = await t
      .http()
      .post(api('/personas'))
      .set(admin.auth)
      .send({ handle: `p${Date.now() % 100000}`, displayName: 'P', systemPrompt: 'x' })
      .expect(201);
    const conv = await t
      .http()
      .post(api('/conversations'))
      .set(admin.auth)
      .send({ personaId: persona.body.id as string })
      .expect(201);
    const r = await t
      .http()
      .patch(api(`/rooms/${conv.body.id as string}`))
      .set(admin.auth)
      .send({ description: 'x' });
    expect(r.status).toBe(400);
  });
});

describe('trust: login throttle across addresses', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({
      TRUST_PROXY: 'loopback',
      AUTH_THROTTLE_USER_LIMIT: '5',
      AUTH_THROTTLE_IP_LIMIT: '5',
      AUTH_THROTTLE_ACCOUNT_LIMIT: '20',
    });
  });
  afterAll(() => t.close());

  it('guessing one account from many addresses stops at the all-addresses account limit', async () => {
    const u = await newUser(t);
    let limited = 0;
    for (let i = 0; i < 60; i++) {
      const r = await t
        .http()
        .post(api('/auth/login'))
        .set('X-Forwarded-For', `2001:db8::${(i + 1).toString(16)}`)
        .send({ username: u.username, password: `wrong-${i}` });
      if (r.status === 429) limited++;
    }
    expect(limited).toBe(40); // the 21st to the 60th
  });
});

describe('trust: login throttle keyed on the typed path', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ AUTH_THROTTLE_USER_LIMIT: '5', AUTH_THROTTLE_IP_LIMIT: '20' });
  });
  afterAll(() => t.close());

  it('the per-(account, IP) limit holds however the path is cased', async () => {
    const u = await newUser(t);
    const paths = ['login', 'Login', 'LOGIN', 'lOgin', 'loGin', 'logIn', 'loGIN', 'LoGiN'];
    let accepted = 0;
    for (let i = 0; i < 16; i++) {
      const r = await t
        .http()
        .post(`/api/v1/auth/${paths[i % paths.length]}`)
        .send({ username: u.username, password: `wrong-${i}` });
      if (r.status === 401) accepted++;
    }
    expect(accepted).toBeLessThanOrEqual(5);
  });
});
