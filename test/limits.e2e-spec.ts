import { randomUUID } from 'node:crypto';
import { ChatGateway } from '../src/chat/chat.gateway';
import { ErrorCode } from '../src/common/errors';
import { commandLimitsOf } from '../src/limits/limits.decorators';
import { testEndpoint } from './support/database';
import { startApp, type TestApp } from './support/app';
import {
  ADMIN_ENV,
  join,
  loginAdmin,
  newRoom,
  newUser,
  send,
  type TestUser,
} from './support/factories';
import { call, type ClientSocket, connect, sleep } from './support/socket';

/**
 * Per-user limits (issue 12, holes 3–5): the socket cap is reserved atomically; one user's
 * in-flight work is capped over sockets and REST, and database-bound work is scheduled fairly
 * between users; one rate-limit policy covers every write on both transports. With
 * TEST_REDIS_URL (CI's second run) the same tests run over Redis, and two instances sharing
 * Redis and server PostgreSQL must share the socket cap and the rate limits.
 */
const api = (path: string) => `/api/v1${path}`;
type Ack = { ok: boolean; error?: { code: string; retryAfterMs?: number } };

const sockets: ClientSocket[] = [];
const open = async (t: Pick<TestApp, 'url'>, token: string) => {
  const s = await connect(t, token);
  sockets.push(s);
  return s;
};
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});

/** Like `call`, without its 10 s timeout (a queued flood may take longer to drain). */
function callSlow(s: ClientSocket, name: string, payload: unknown): Promise<Ack> {
  return new Promise((resolve) =>
    (s.emit as (n: string, p: unknown, cb: (a: Ack) => void) => void)(name, payload, resolve),
  );
}

/** `n` handshakes at once for one token, spread over `apps`; returns how many connected. */
async function handshakeStorm(apps: TestApp[], token: string, n: number) {
  const results = await Promise.allSettled(
    Array.from({ length: n }, (_, i) => open(apps[i % apps.length], token)),
  );
  const refused = results
    .filter((r): r is PromiseRejectedResult => r.status === 'rejected')
    .map((r) => (r.reason as { data?: { code?: string } }).data?.code);
  return { connected: results.filter((r) => r.status === 'fulfilled').length, refused };
}

describe('the per-user socket cap (hole 3)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ADMIN_ENV, WS_MAX_SOCKETS_PER_USER: '10' });
  });
  afterAll(() => t.close());

  it('100 concurrent handshakes for one user with a cap of 10: exactly 10 connect', async () => {
    const u = await newUser(t);
    const { connected, refused } = await handshakeStorm([t], u.accessToken, 100);
    expect(connected).toBe(10);
    expect(refused).toHaveLength(90);
    expect(new Set(refused)).toEqual(new Set(['RATE_LIMITED']));
  });

  it('slots are given back on disconnect', async () => {
    const u = await newUser(t);
    expect((await handshakeStorm([t], u.accessToken, 30)).connected).toBe(10);
    for (const s of sockets.splice(0)) s.close();
    await sleep(300);
    expect((await handshakeStorm([t], u.accessToken, 30)).connected).toBe(10);
  });
});

describe('fair scheduling and the per-user in-flight cap (hole 4)', () => {
  describe('a flood of reads from one user', () => {
    let t: TestApp;
    let roomId: string;
    let attacker: TestUser;
    let victim: TestUser;
    beforeAll(async () => {
      t = await startApp({
        ...ADMIN_ENV,
        // Only the fair scheduler stands between the flood and the victim here.
        DB_FAIR_CONCURRENCY: '2',
        USER_MAX_INFLIGHT: '100000',
        WS_MAX_INFLIGHT_PER_SOCKET: '100000',
        RATE_LIMIT_SEND: '100000',
      });
      const admin = await loginAdmin(t);
      roomId = (await newRoom(t, admin)).id;
      [attacker, victim] = [await newUser(t), await newUser(t)];
      await join(t, attacker, roomId);
      await join(t, victim, roomId);
      for (let i = 0; i < 50; i++) await send(t, admin, roomId, `seed ${i}`);
    });
    afterAll(() => t.close());

    it("one user's 400 queued history.fetch do not hold back another user's", async () => {
      const floods = await Promise.all(
        Array.from({ length: 10 }, () => open(t, attacker.accessToken)),
      );
      const v = await open(t, victim.accessToken);
      let attackerDone = 0;
      const flood = floods.flatMap((s) =>
        Array.from({ length: 40 }, () =>
          callSlow(s, 'history.fetch', { roomId, limit: 50 }).then((a) => {
            attackerDone++;
            return a;
          }),
        ),
      );
      // The flood is on the server and being served.
      while (attackerDone === 0) await sleep(5);
      const latencies: number[] = [];
      const doneWhenServed: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t0 = Date.now();
        const ack = await call(v, 'history.fetch', { roomId, limit: 50 });
        latencies.push(Date.now() - t0);
        doneWhenServed.push(attackerDone);
        expect(ack.ok).toBe(true);
      }
      const acks = await Promise.all(flood);
      expect(acks.every((a) => a.ok)).toBe(true);
      // Served round-robin, each of the victim's reads waits for about one read of the attacker
      // per free slot, not for the attacker's whole queue (FIFO: ~400 before the first one).
      expect(doneWhenServed[4]).toBeLessThan(200);
      console.log(
        `victim history.fetch ms: ${latencies.join(', ')}; attacker reads done meanwhile: ${doneWhenServed.join(', ')} of 400`,
      );
    });
  });

  describe('the per-user in-flight cap', () => {
    let t: TestApp;
    let roomId: string;
    beforeAll(async () => {
      t = await startApp({ ...ADMIN_ENV, USER_MAX_INFLIGHT: '4', DB_FAIR_CONCURRENCY: '1' });
      roomId = (await newRoom(t, await loginAdmin(t))).id;
    });
    afterAll(() => t.close());

    it('REST beyond USER_MAX_INFLIGHT answers 429 with Retry-After; other users are served', async () => {
      const [u, other] = [await newUser(t), await newUser(t)];
      await join(t, u, roomId);
      await join(t, other, roomId);
      const flood = Array.from({ length: 30 }, () =>
        t
          .http()
          .get(api(`/rooms/${roomId}/messages?limit=100`))
          .set(u.auth),
      );
      const mine = await t
        .http()
        .get(api(`/rooms/${roomId}/messages`))
        .set(other.auth);
      const responses = await Promise.all(flood);
      expect(mine.status).toBe(200);
      const limited = responses.filter((r) => r.status === 429);
      expect(limited.length).toBeGreaterThan(0);
      expect(responses.filter((r) => r.status !== 429).every((r) => r.status === 200)).toBe(true);
      for (const r of limited) {
        expect(r.body).toMatchObject({ code: 'RATE_LIMITED' });
        expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      }
    });

    it("the cap spans all of a user's sockets and REST", async () => {
      const u = await newUser(t);
      await join(t, u, roomId);
      const tabs = [await open(t, u.accessToken), await open(t, u.accessToken)];
      const rest = Array.from({ length: 4 }, () =>
        t
          .http()
          .get(api(`/rooms/${roomId}/messages`))
          .set(u.auth),
      );
      const acks = await Promise.all(
        tabs.flatMap((s) =>
          Array.from({ length: 8 }, () => call(s, 'history.fetch', { roomId, limit: 10 })),
        ),
      );
      const statuses = (await Promise.all(rest)).map((r) => r.status);
      const served = acks.filter((a) => a.ok).length + statuses.filter((s) => s === 200).length;
      expect(served).toBeGreaterThanOrEqual(4);
      expect(served).toBeLessThan(20);
      for (const a of acks.filter((a) => !a.ok))
        expect(a).toMatchObject({
          error: { code: 'RATE_LIMITED', retryAfterMs: expect.any(Number) },
        });
    });
  });
});

describe('one rate-limit policy for every write, on both transports (hole 5)', () => {
  const LIMITS = {
    RATE_LIMIT_WINDOW_MS: '60000',
    RATE_LIMIT_SEND: '5',
    RATE_LIMIT_EDIT: '5',
    RATE_LIMIT_REACT: '5',
    RATE_LIMIT_ROOMS: '6',
    RATE_LIMIT_REFRESH: '3',
  };
  let t: TestApp;
  let admin: TestUser;
  let roomId: string;
  beforeAll(async () => {
    t = await startApp({ ...ADMIN_ENV, ...LIMITS });
    admin = await loginAdmin(t);
    roomId = (await newRoom(t, admin)).id;
  });
  afterAll(() => t.close());

  const restSend = (u: TestUser, content: string) =>
    t
      .http()
      .post(api(`/rooms/${roomId}/messages`))
      .set(u.auth)
      .send({ clientMsgId: randomUUID(), content });

  it('REST sends are refused once the socket is RATE_LIMITED: one bucket per user', async () => {
    const u = await newUser(t);
    await join(t, u, roomId);
    const s = await open(t, u.accessToken);
    const acks: Ack[] = [];
    for (let i = 0; i < 6; i++)
      acks.push(
        await call(s, 'message.send', { roomId, clientMsgId: randomUUID(), content: `s${i}` }),
      );
    expect(acks.filter((a) => a.ok)).toHaveLength(5);
    expect(acks[5]).toMatchObject({
      ok: false,
      error: { code: 'RATE_LIMITED', retryAfterMs: expect.any(Number) },
    });
    const rest = await Promise.all(Array.from({ length: 20 }, (_, i) => restSend(u, `r${i}`)));
    expect(rest.map((r) => r.status)).toEqual(Array.from({ length: 20 }, () => 429));
    expect(rest[0].body).toMatchObject({ code: 'RATE_LIMITED' });
    expect(Number(rest[0].headers['retry-after'])).toBeGreaterThan(1);
    // Another user is not limited by it.
    const other = await newUser(t);
    await join(t, other, roomId);
    expect((await restSend(other, 'hello')).status).toBe(201);
  });

  it('leave/join cycles are limited (REST and socket share the rooms bucket)', async () => {
    const u = await newUser(t); // its first join is one of the 6
    await join(t, u, roomId);
    const s = await open(t, u.accessToken);
    let refused = 0;
    for (let i = 0; i < 30; i++) {
      const left = await t
        .http()
        .post(api(`/rooms/${roomId}/leave`))
        .set(u.auth);
      if (left.status === 429) refused++;
      else expect(left.status).toBe(204);
      const joined = await call(s, 'room.join', { roomId });
      if (!joined.ok) {
        expect(joined.error).toMatchObject({ code: 'RATE_LIMITED' });
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(0);
    const history = await t
      .http()
      .get(api(`/rooms/${roomId}/messages?limit=200`))
      .set(admin.auth)
      .expect(200);
    const notes = (history.body.items as { role: string; content: string }[]).filter(
      (m) => m.role === 'system' && m.content.includes(u.username),
    );
    // 60 cycles used to write 120 system messages; now at most the bucket's 6 writes.
    expect(notes.length).toBeLessThanOrEqual(6);
  });

  it('reaction toggles and edits are limited on both transports', async () => {
    const u = await newUser(t);
    await join(t, u, roomId);
    const s = await open(t, u.accessToken);
    const { id: messageId } = (await restSend(u, 'react to me')).body as { id: number };
    const reacts: number[] = [];
    for (let i = 0; i < 10; i++) {
      const on = await t
        .http()
        .put(api(`/messages/${messageId}/reactions/${encodeURIComponent('👍')}`))
        .set(u.auth);
      reacts.push(on.status);
      const off = await call(s, 'reaction.remove', { messageId, emoji: '👍' });
      reacts.push(off.ok ? 200 : off.error?.code === ErrorCode.RATE_LIMITED ? 429 : 500);
    }
    expect(reacts.filter((c) => c === 200)).toHaveLength(5);
    expect(reacts.filter((c) => c === 429)).toHaveLength(15);

    const edits: number[] = [];
    for (let i = 0; i < 10; i++) {
      const rest = await t
        .http()
        .patch(api(`/messages/${messageId}`))
        .set(u.auth)
        .send({ content: `edit ${i} ${'y'.repeat(3000)}` });
      edits.push(rest.status);
      const ws = await call(s, 'message.edit', { messageId, content: `ws edit ${i}` });
      edits.push(ws.ok ? 200 : ws.error?.code === ErrorCode.RATE_LIMITED ? 429 : 500);
    }
    expect(edits.filter((c) => c === 200)).toHaveLength(5);
    expect(edits.filter((c) => c === 429)).toHaveLength(15);
    // Deleting is in the same bucket as editing: refused now too.
    expect(
      (
        await t
          .http()
          .delete(api(`/messages/${messageId}`))
          .set(u.auth)
      ).status,
    ).toBe(429);
  });

  it('auth.refresh has a bucket (RATE_LIMIT_REFRESH) and waits for the database budget', async () => {
    expect(commandLimitsOf(Reflect.get(ChatGateway.prototype, 'refresh') as object)).toEqual({
      bucket: 'refresh',
      dbBound: true,
    });
    const u = await newUser(t);
    const s = await open(t, u.accessToken);
    const acks: Ack[] = [];
    for (let i = 0; i < 6; i++)
      acks.push(await call(s, 'auth.refresh', { accessToken: u.accessToken }));
    expect(acks.filter((a) => a.ok)).toHaveLength(3);
    for (const a of acks.slice(3))
      expect(a).toMatchObject({
        ok: false,
        error: { code: 'RATE_LIMITED', retryAfterMs: expect.any(Number) },
      });
    // The socket stays; another user's refresh is not limited by it.
    expect(s.connected).toBe(true);
    const other = await newUser(t);
    const o = await open(t, other.accessToken);
    expect(await call(o, 'auth.refresh', { accessToken: other.accessToken })).toMatchObject({
      ok: true,
    });
  });
});

const SHARED = Boolean(process.env.TEST_REDIS_URL && process.env.TEST_DATABASE_URL);
(SHARED ? describe : describe.skip)('two instances sharing Redis and PostgreSQL', () => {
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    const endpoint = await testEndpoint();
    const env = {
      ...ADMIN_ENV,
      WS_MAX_SOCKETS_PER_USER: '10',
      RATE_LIMIT_WINDOW_MS: '60000',
      RATE_LIMIT_SEND: '5',
    };
    a = await startApp(env, endpoint);
    b = await startApp(env, endpoint);
    await sleep(500); // both heartbeats are in Redis
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  it('the socket cap holds across instances: 100 handshakes over two instances, exactly 10 connect', async () => {
    const u = await newUser(a);
    const { connected, refused } = await handshakeStorm([a, b], u.accessToken, 100);
    expect(connected).toBe(10);
    expect(new Set(refused)).toEqual(new Set(['RATE_LIMITED']));
  });

  it('the send limit is shared: limited on one instance, refused on the other', async () => {
    const admin = await loginAdmin(a);
    const roomId = (await newRoom(a, admin)).id;
    const u = await newUser(a);
    await join(a, u, roomId);
    const s = await open(a, u.accessToken);
    for (let i = 0; i < 5; i++)
      expect(
        (await call(s, 'message.send', { roomId, clientMsgId: randomUUID(), content: `a${i}` })).ok,
      ).toBe(true);
    const onB = await b
      .http()
      .post(api(`/rooms/${roomId}/messages`))
      .set(u.auth)
      .send({ clientMsgId: randomUUID(), content: 'on b' });
    expect(onB.status).toBe(429);
    expect(Number(onB.headers['retry-after'])).toBeGreaterThan(1);
  });
});

describe('administration has a rate bucket too (RATE_LIMIT_ADMIN)', () => {
  let t: TestApp;
  let admin: TestUser;
  beforeAll(async () => {
    t = await startApp({ ...ADMIN_ENV, RATE_LIMIT_WINDOW_MS: '60000', RATE_LIMIT_ADMIN: '3' });
    admin = await loginAdmin(t);
  });
  afterAll(() => t.close());

  it('room creation, room changes, user changes and persona administration share one bucket', async () => {
    const created = await Promise.all(
      Array.from({ length: 2 }, (_, i) =>
        t
          .http()
          .post(api('/rooms'))
          .set(admin.auth)
          .send({ name: `admin-limit-${randomUUID().slice(0, 8)}-${i}`, visibility: 'public' }),
      ),
    );
    expect(created.map((r) => r.status)).toEqual([201, 201]);
    const user = await newUser(t);
    await t
      .http()
      .patch(api(`/users/${user.id}`))
      .set(admin.auth)
      .send({ role: 'user' })
      .expect(200); // the third
    const over = [
      await t
        .http()
        .post(api('/rooms'))
        .set(admin.auth)
        .send({ name: `admin-limit-${randomUUID().slice(0, 8)}`, visibility: 'public' }),
      await t
        .http()
        .patch(api(`/rooms/${created[0].body.id}`))
        .set(admin.auth)
        .send({ description: 'x' }),
      await t
        .http()
        .post(api('/personas'))
        .set(admin.auth)
        .send({ handle: `p_${randomUUID().slice(0, 8)}`, displayName: 'P' }),
      await t
        .http()
        .delete(api(`/rooms/${created[1].body.id}`))
        .set(admin.auth),
    ];
    expect(over.map((r) => r.status)).toEqual([429, 429, 429, 429]);
    expect(over[0].body).toMatchObject({ code: ErrorCode.RATE_LIMITED });
    expect(Number(over[0].headers['retry-after'])).toBeGreaterThan(1);
    // Reading is not limited by it.
    await t
      .http()
      .get(api(`/rooms/${created[0].body.id}`))
      .set(admin.auth)
      .expect(200);
  });
});
