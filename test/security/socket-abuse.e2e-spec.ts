import { jest } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { io } from 'socket.io-client';
import { AuthService } from '../../src/auth/auth.service';
import { PresenceService } from '../../src/chat/presence.service';
import { startApp, type TestApp } from '../support/app';
import { ADMIN_ENV, join, loginAdmin, newRoom, newUser, type TestUser } from '../support/factories';
import { call, type ClientSocket, connect, disconnected, ok, sleep } from '../support/socket';

/**
 * Socket abuse (Socket.IO CVE classes: oversized and malformed packets, floods, connection
 * exhaustion, cross-site websocket hijacking). Each is handled and the server keeps serving
 * others. test/gateway.e2e-spec.ts › limits covers the basic oversized packet, the send flood
 * and a truncated packet; this suite adds the rest.
 */
describe('security: socket abuse', () => {
  let t: TestApp;
  let roomId: string;
  let bystander: TestUser;
  let by: ClientSocket;
  const sockets: ClientSocket[] = [];
  const open = async (token: string, opts?: Parameters<typeof connect>[2]) => {
    const s = await connect(t, token, opts);
    sockets.push(s);
    return s;
  };
  /** The bystander still gets an answer, quickly. */
  const stillServing = async () => {
    const t0 = Date.now();
    const m = await ok(by, 'message.send', { roomId, clientMsgId: randomUUID(), content: 'alive' });
    expect(m.content).toBe('alive');
    return Date.now() - t0;
  };

  beforeAll(async () => {
    t = await startApp({
      ...ADMIN_ENV,
      WS_MAX_PAYLOAD_BYTES: '16384',
      WS_MAX_SOCKETS_PER_USER: '3',
      RATE_LIMIT_SEND: '100',
      // Two tabs send 60 at once below: the per-user in-flight cap is not what is tested there.
      USER_MAX_INFLIGHT: '100',
      CORS_ORIGINS: 'https://good.example',
    });
    const admin = await loginAdmin(t);
    bystander = await newUser(t);
    roomId = (await newRoom(t, admin)).id;
    await join(t, bystander, roomId);
    by = await connect(t, bystander.accessToken);
  });
  afterEach(() => {
    for (const s of sockets.splice(0)) s.close();
  });
  afterAll(async () => {
    by.close();
    await t.close();
  });

  const engine = (s: ClientSocket) =>
    (s.io as unknown as { engine: { write: (d: string | Buffer) => void } }).engine;

  it('oversized packets (text and binary) close only the sender', async () => {
    const u = await newUser(t);
    for (const payload of ['x'.repeat(20_000), Buffer.alloc(20_000)]) {
      const s = await open(u.accessToken);
      const gone = disconnected(s);
      (s.emit as (...a: unknown[]) => void)('message.send', {
        roomId,
        clientMsgId: 'big',
        content: payload,
      });
      await gone;
    }
    await stillServing();
  });

  it('malformed packets of every kind: the sender is dropped or answered, others unaffected', async () => {
    const u = await newUser(t);
    const raw = [
      '42',
      '4',
      '42[',
      '42{}',
      '42"message.send"',
      '42[null]',
      '42[1,2,3]',
      '42[{"a":1}]',
      '42/nonexistent,["x"]',
      '451-["message.send",{"_placeholder":true,"num":99}]',
      '43999["x"]',
      '40/admin,',
      '9',
      '42["message.send",' + '['.repeat(3000) + ']'.repeat(3000) + ']',
      '\u0000\u0001\u0002',
    ];
    for (const packet of raw) {
      const s = await open(u.accessToken);
      engine(s).write(packet);
      await sleep(30);
    }
    await sleep(200);
    await stillServing();
  });

  it("the per-user send limit spans all of a user's sockets", async () => {
    const u = await newUser(t);
    await join(t, u, roomId);
    const tabs = [await open(u.accessToken), await open(u.accessToken)];
    const acks = [];
    // Two waves of 30 per socket (below WS_MAX_INFLIGHT_PER_SOCKET): 120 sends in all.
    for (const wave of [0, 1])
      acks.push(
        ...(await Promise.all(
          tabs.flatMap((s, tab) =>
            Array.from({ length: 30 }, (_, i) =>
              call(s, 'message.send', {
                roomId,
                clientMsgId: `tab${tab}-${wave}-${i}`,
                content: `m${i}`,
              }),
            ),
          ),
        )),
      );
    expect(acks.filter((a) => a.ok)).toHaveLength(100);
    const limited = acks.filter((a) => !a.ok);
    expect(limited).toHaveLength(20);
    for (const a of limited)
      expect(a).toMatchObject({
        error: { code: 'RATE_LIMITED', retryAfterMs: expect.any(Number) },
      });
    await stillServing();
  });

  it('unknown events, commands without acks and odd argument lists are ignored or answered', async () => {
    const u = await newUser(t);
    const s = await open(u.accessToken);
    const emit = (s.emit as (...a: unknown[]) => void).bind(s);
    for (let i = 0; i < 500; i++) emit(`no.such.event.${i}`, { i });
    emit('__proto__', {});
    emit('constructor', {});
    emit('message.send', ...Array.from({ length: 200 }, (_, i) => i));
    emit('room.join', 'not-an-object', () => undefined);
    expect(await call(s, 'room.join', undefined as never)).toMatchObject({
      ok: false,
      error: { code: 'VALIDATION_FAILED' },
    });
    const unknown = await new Promise((resolve) => emit('no.such.command', {}, resolve));
    expect(unknown).toEqual({
      ok: false,
      error: { code: 'NOT_FOUND', message: 'Unknown command' },
    });
    expect(s.connected).toBe(true);
    await stillServing();
  });

  it('floods (typing, joins, history, unknown events) do not starve another user', async () => {
    const u = await newUser(t);
    await join(t, u, roomId);
    const s = await open(u.accessToken);
    const emit = (s.emit as (...a: unknown[]) => void).bind(s);
    const flood: Promise<{ ok: boolean; error?: { code: string } } | null>[] = [];
    // ~600 database-backed commands in flight from one socket used to hold another user's ack
    // for over 10 s; now at most WS_MAX_INFLIGHT_PER_SOCKET run, the rest are RATE_LIMITED.
    for (let i = 0; i < 300; i++) {
      emit('typing.start', { roomId });
      emit('junk', 'x'.repeat(1000));
      flood.push(call(s, 'history.fetch', { roomId, limit: 200 }).catch(() => null));
      flood.push(call(s, 'room.join', { roomId }).catch(() => null));
    }
    const latency = await stillServing();
    const acks = await Promise.all(flood);
    expect(latency).toBeLessThan(5_000);
    expect(acks.filter((a) => a?.error?.code === 'RATE_LIMITED').length).toBeGreaterThan(0);
    await stillServing();
  });

  it('too many sockets for one user: the next handshake is refused with RATE_LIMITED, others unaffected', async () => {
    const u = await newUser(t);
    for (let i = 0; i < 3; i++) await open(u.accessToken);
    const err = (await connect(t, u.accessToken).catch((e: unknown) => e)) as {
      data?: { code?: string };
    };
    expect(err.data?.code).toBe('RATE_LIMITED');
    await stillServing();
  });

  it('a client that gives up mid-handshake leaves no socket slot behind', async () => {
    const u = await newUser(t);
    const auth = t.app.get(AuthService);
    const verify = auth.verifyAccessToken.bind(auth);
    // The token check (a database query) is slow: each client closes while it runs.
    const slow = jest
      .spyOn(auth, 'verifyAccessToken')
      .mockImplementation(async (token) => (await sleep(150), verify(token)));
    try {
      for (let i = 0; i < 4; i++) {
        const s = io(t.url, {
          transports: ['websocket'],
          forceNew: true,
          reconnection: false,
          auth: { token: u.accessToken },
        });
        await sleep(50);
        s.close();
      }
      await sleep(400);
    } finally {
      slow.mockRestore();
    }
    expect(t.app.get(PresenceService).socketCount(u.id)).toBe(0);
    // Past WS_MAX_SOCKETS_PER_USER aborted handshakes, the user still connects, and is online.
    const s = await open(u.accessToken);
    expect(s.connected).toBe(true);
    expect(t.app.get(PresenceService).socketCount(u.id)).toBe(1);
  });

  it('a storm of unauthenticated handshakes is refused; the server keeps serving', async () => {
    const attempts = await Promise.all(
      Array.from({ length: 150 }, (_, i) =>
        connect(t, i % 2 ? 'garbage' : '').then(
          (s) => {
            s.close();
            return 'connected';
          },
          (e: { data?: { code?: string } }) => e.data?.code ?? 'error',
        ),
      ),
    );
    expect(attempts.filter((a) => a === 'connected')).toEqual([]);
    await stillServing();
  });

  it('origins: a disallowed browser origin is refused on websocket and polling; an allowed one connects', async () => {
    const u = await newUser(t);
    for (const transports of [['websocket'], ['polling']] as const) {
      const err = await connect(t, u.accessToken, {
        extraHeaders: { Origin: 'https://evil.example' },
        transports: [...transports],
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
    }
    await open(u.accessToken, { extraHeaders: { Origin: 'https://good.example' } });
    // REST: no CORS grant for the evil origin (the browser would block reading the answer).
    const res = await t
      .http()
      .get('/api/v1/auth/me')
      .set({ ...u.auth, Origin: 'https://evil.example' });
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
    const good = await t
      .http()
      .get('/api/v1/auth/me')
      .set({ ...u.auth, Origin: 'https://good.example' });
    expect(good.headers['access-control-allow-origin']).toBe('https://good.example');
  });

  it('a client that never reads (no ack callbacks, no listeners) does not hold the server', async () => {
    const u = await newUser(t);
    await join(t, u, roomId);
    const s = io(t.url, {
      transports: ['websocket'],
      forceNew: true,
      reconnection: false,
      auth: { token: u.accessToken },
    });
    await new Promise((r) => s.once('connect', () => r(null)));
    for (let i = 0; i < 200; i++)
      s.emit('message.send', { roomId, clientMsgId: `noack-${i}`, content: `n${i}` });
    s.close();
    await sleep(300);
    await stillServing();
  });
});
