import { randomUUID } from 'node:crypto';
import {
  ParlorClient,
  ParlorError,
  type MessageDto,
  type ParlorClientOptions,
} from '../client/index';
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
import { sleep } from './support/socket';

const api = (path: string) => `/api/v1${path}`;

/** Polls until `check` passes (or throws its last error after `ms`). */
async function eventually(check: () => void, ms = 8000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      check();
      return;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await sleep(25);
    }
  }
}

describe('typed client (client/)', () => {
  let t: TestApp;
  let admin: TestUser;
  const clients: ParlorClient[] = [];
  const connect = async (user: TestUser, opts: Partial<ParlorClientOptions> = {}) => {
    const c = await ParlorClient.connect({
      url: t.url,
      token: user.accessToken,
      ackTimeoutMs: 1500,
      retry: { initialDelayMs: 50, maxDelayMs: 500 },
      ...opts,
      socket: {
        transports: ['websocket'],
        reconnectionDelay: 300,
        randomizationFactor: 0,
        ...opts.socket,
      },
    });
    clients.push(c);
    return c;
  };
  const history = async (user: TestUser, roomId: string): Promise<MessageDto[]> =>
    (
      await t
        .http()
        .get(api(`/rooms/${roomId}/messages?limit=200`))
        .set(user.auth)
        .expect(200)
    ).body.items.filter((m: MessageDto) => m.role === 'user'); // not the "x joined" notes

  beforeAll(async () => {
    t = await startApp({
      ...ADMIN_ENV,
      // Other tests send 130 messages from one user over REST: the send limit is not tested here.
      RATE_LIMIT_SEND: '1000',
    });
    admin = await loginAdmin(t);
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
  });
  afterAll(() => t.close());

  async function roomWith(...users: TestUser[]) {
    const room = await newRoom(t, admin);
    for (const u of users) await join(t, u, room.id);
    return room;
  }

  describe('send', () => {
    it('retries after a lost ack under the same clientMsgId: one message is stored and delivered once', async () => {
      const [a, b] = [await newUser(t), await newUser(t)];
      const room = await roomWith(a, b);
      const [ca, cb] = [await connect(a), await connect(b)];
      const seenByB: MessageDto[] = [];
      cb.on('message.created', (m) => seenByB.push(m));

      // Drop the first acknowledgement that reaches client A: the server stored the message,
      // but A never hears so and must retry.
      const raw = ca.socket as unknown as { onack: (packet: unknown) => void };
      const onack = raw.onack.bind(raw);
      let dropped = 0;
      raw.onack = (packet) => {
        if (dropped++ === 0) return;
        onack(packet);
      };

      const clientMsgId = randomUUID();
      const message = await ca.send(room.id, 'through a lost ack', { clientMsgId });
      expect(dropped).toBeGreaterThanOrEqual(2);
      expect(message).toMatchObject({
        roomId: room.id,
        clientMsgId,
        content: 'through a lost ack',
      });

      const stored = (await history(a, room.id)).filter((m) => m.clientMsgId === clientMsgId);
      expect(stored.map((m) => m.id)).toEqual([message.id]);
      await eventually(() => expect(seenByB.map((m) => m.id)).toEqual([message.id]));
      await sleep(200);
      expect(seenByB).toHaveLength(1);
    });

    it('rejects permanent errors at once (VALIDATION_FAILED, NOT_FOUND)', async () => {
      const a = await newUser(t);
      const room = await roomWith(a);
      const ca = await connect(a);
      await expect(ca.send(room.id, '   ')).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
      const hidden = await newRoom(t, admin, { visibility: 'private' });
      const err = (await ca.send(hidden.id, 'hello').catch((e: unknown) => e)) as ParlorError;
      expect(err).toBeInstanceOf(ParlorError);
      expect(['NOT_FOUND', 'FORBIDDEN']).toContain(err.code);
      expect(err.transient).toBe(false);
    });
  });

  describe('join and reconnect', () => {
    it('kills the transport mid-stream: the client reconnects, catches up with since, and sees every message exactly once', async () => {
      const [a, b] = [await newUser(t), await newUser(t)];
      const room = await roomWith(a, b);
      const ca = await connect(a);
      const created: number[] = [];
      const updated: MessageDto[] = [];
      const resynced: number[] = [];
      ca.on('message.created', (m) => created.push(m.id));
      ca.on('message.updated', (m) => updated.push(m));
      ca.on('room.resynced', (r) => resynced.push(r.messages.length));
      await ca.join(room.id);

      const ids: number[] = [];
      for (let i = 0; i < 5; i++) ids.push((await send(t, b, room.id, `before ${i}`)).id);
      await eventually(() => expect(created).toEqual(ids));
      const cursorBefore = ca.cursor(room.id)!;
      expect(cursorBefore).toBeGreaterThan(0);

      // The transport dies (as on a network change); socket.io reconnects after 300 ms.
      ca.socket.io.engine.close();
      for (let i = 0; i < 5; i++) ids.push((await send(t, b, room.id, `during ${i}`)).id);
      await t
        .http()
        .patch(api(`/messages/${ids[0]}`))
        .set(b.auth)
        .send({ content: 'before 0 (edited while A was away)' })
        .expect(200);
      for (let i = 0; i < 5; i++) ids.push((await send(t, b, room.id, `after ${i}`)).id);

      await eventually(() => expect([...created].sort((x, y) => x - y)).toEqual(ids));
      expect(created).toHaveLength(ids.length); // exactly once
      expect(resynced.length).toBeGreaterThanOrEqual(1);
      expect(resynced[0]).toBeGreaterThan(0); // the catch-up carried what was missed
      expect(updated.map((m) => [m.id, m.content])).toEqual([
        [ids[0], 'before 0 (edited while A was away)'],
      ]);
      expect(ca.cursor(room.id)).toBeGreaterThan(cursorBefore);
      await sleep(200);
      expect(created).toHaveLength(ids.length);
    });

    it('pages the catch-up while hasMore after a long absence', async () => {
      const [a, b] = [await newUser(t), await newUser(t)];
      const room = await roomWith(a, b);
      const ca = await connect(a);
      const created = new Map<number, number>();
      ca.on('message.created', (m) => created.set(m.id, (created.get(m.id) ?? 0) + 1));
      await ca.join(room.id);

      ca.socket.disconnect();
      const ids: number[] = [];
      for (let i = 0; i < 130; i++) ids.push((await send(t, b, room.id, `missed ${i}`)).id);
      ca.socket.connect();

      await eventually(() => expect(created.size).toBe(130), 15_000);
      expect([...created.keys()].sort((x, y) => x - y)).toEqual(ids);
      expect([...created.values()].every((n) => n === 1)).toBe(true);
    });
  });

  describe('events and tokens', () => {
    it('delivers typed server events to on() handlers, and on() returns an unsubscribe', async () => {
      const [a, b] = [await newUser(t), await newUser(t)];
      const room = await roomWith(a, b);
      const [ca, cb] = [await connect(a), await connect(b)];
      await ca.join(room.id);
      await cb.join(room.id);
      const typing: { userId: string; typing: boolean }[] = [];
      const off = ca.on('typing', (e) => typing.push({ userId: e.userId, typing: e.typing }));
      const reactions: string[] = [];
      ca.on('reaction.updated', (e) => reactions.push(`${e.emoji}:${e.reactions[0]?.count}`));

      await cb.request('typing.start', { roomId: room.id });
      await eventually(() => expect(typing).toEqual([{ userId: b.id, typing: true }]));
      const m = await cb.send(room.id, 'react to me');
      await cb.request('reaction.add', { messageId: m.id, emoji: '👍' });
      await eventually(() => expect(reactions).toEqual(['👍:1']));

      off();
      await cb.request('typing.stop', { roomId: room.id });
      await sleep(200);
      expect(typing).toHaveLength(1);

      // Compile-time checks: names and payloads come from the contract.
      // @ts-expect-error not an event of the contract
      ca.on('message.sent', () => undefined);
      ca.on('presence.changed', (e) => {
        // @ts-expect-error presence.changed has no roomId
        void e.roomId;
      });
      // @ts-expect-error message.send needs clientMsgId and content
      void ca.request('message.send', { roomId: room.id }).catch(() => undefined);
    });

    it('renews the token before it expires through the refreshToken hook (auth.refresh keeps the socket)', async () => {
      const short = await startApp({ ACCESS_TOKEN_TTL: '3' });
      try {
        const u = await newUser(short);
        let refreshToken = u.refreshToken;
        let calls = 0;
        const hook = async () => {
          calls++;
          const res = await short
            .http()
            .post(api('/auth/refresh'))
            .send({ refreshToken })
            .expect(200);
          refreshToken = res.body.refreshToken;
          return res.body.accessToken as string;
        };
        const c = await ParlorClient.connect({
          url: short.url,
          token: u.accessToken,
          refreshToken: hook,
          refreshBeforeMs: 1500,
          socket: { transports: ['websocket'] },
        });
        clients.push(c);
        const states: string[] = [];
        c.on('connection', ({ state }) => states.push(state));
        await sleep(4500); // past the first token's expiry
        expect(calls).toBeGreaterThanOrEqual(1);
        expect(c.connected).toBe(true);
        expect(states).toEqual([]); // never dropped
      } finally {
        // Clients first: a reconnecting client would call the refresh hook, and supertest
        // re-opens a closed server to answer it.
        for (const c of clients.splice(0)) c.close();
        await short.close();
      }
    });

    it('when the server closes the socket with token_expired, refreshes and reconnects, catching up', async () => {
      const short = await startApp({ ...ADMIN_ENV, ACCESS_TOKEN_TTL: '2' });
      try {
        const root = await loginAdmin(short);
        const [u, other] = [await newUser(short), await newUser(short)];
        const room = await newRoom(short, root);
        await join(short, u, room.id);
        await join(short, other, room.id);
        let refreshToken = u.refreshToken;
        const c = await ParlorClient.connect({
          url: short.url,
          token: u.accessToken,
          refreshToken: async () => {
            const res = await short
              .http()
              .post(api('/auth/refresh'))
              .send({ refreshToken })
              .expect(200);
            refreshToken = res.body.refreshToken;
            return res.body.accessToken as string;
          },
          refreshBeforeMs: -60_000, // never early: let the server's expiry hit
          socket: { transports: ['websocket'] },
        });
        clients.push(c);
        const reasons: string[] = [];
        c.on('session.revoked', (e) => reasons.push(e.reason));
        const created: string[] = [];
        c.on('message.created', (m) => created.push(m.content ?? ''));
        await c.join(room.id);
        const states: string[] = [];
        c.on('connection', ({ state }) => states.push(state));

        await eventually(() => expect(reasons).toEqual(['token_expired']), 5000);
        // The other user's token has expired by now as well: log in again to send.
        const login = await short
          .http()
          .post(api('/auth/login'))
          .send({ username: other.username, password: other.password })
          .expect(200);
        const fresh = { ...other, auth: { Authorization: `Bearer ${login.body.accessToken}` } };
        await send(short, fresh, room.id, 'while A renewed its token');
        await eventually(() => expect(states).toEqual(['disconnected', 'connected']), 5000);
        await eventually(() => expect(created).toEqual(['while A renewed its token']));
      } finally {
        // Clients first: a reconnecting client would call the refresh hook, and supertest
        // re-opens a closed server to answer it.
        for (const c of clients.splice(0)) c.close();
        await short.close();
      }
    });
  });
});

// An app of its own (booted after the one above is closed): it allows 3 sends per user per
// second, which the tests above, sending 130 messages from one user, could not live with.
describe('typed client under the send limit', () => {
  let t: TestApp;
  let admin: TestUser;
  beforeAll(async () => {
    t = await startApp({ ...ADMIN_ENV, RATE_LIMIT_SEND: '3', RATE_LIMIT_WINDOW_MS: '1000' });
    admin = await loginAdmin(t);
  });
  afterAll(() => t.close());

  it('generates a clientMsgId, and waits out RATE_LIMITED for retryAfterMs instead of failing', async () => {
    const a = await newUser(t);
    const room = await newRoom(t, admin);
    await join(t, a, room.id);
    const ca = await ParlorClient.connect({
      url: t.url,
      token: a.accessToken,
      ackTimeoutMs: 1500,
      retry: { initialDelayMs: 50, maxDelayMs: 500 },
      socket: { transports: ['websocket'] },
    });
    try {
      const started = Date.now();
      // 3 sends per second: the next 3 wait for the window to pass.
      const sent = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => ca.send(room.id, `burst ${i}`)));
      expect(Date.now() - started).toBeGreaterThanOrEqual(500);
      expect(new Set(sent.map((m) => m.clientMsgId)).size).toBe(6);
      const stored = (
        await t
          .http()
          .get(api(`/rooms/${room.id}/messages?limit=200`))
          .set(a.auth)
          .expect(200)
      ).body.items.filter((m: MessageDto) => m.role === 'user');
      expect(stored.map((m: MessageDto) => m.content).sort()).toEqual(
        [1, 2, 3, 4, 5, 6].map((i) => `burst ${i}`),
      );
    } finally {
      ca.close();
    }
  });
});
