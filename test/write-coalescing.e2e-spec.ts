import { randomUUID } from 'node:crypto';
import { Socket as NetSocket } from 'node:net';
import { startApp, TestApp } from './support/app';
import {
  ADMIN_ENV,
  join,
  loginAdmin,
  newRoom,
  newUser,
  NO_WRITE_LIMITS,
  TestUser,
} from './support/factories';
import { call, ClientSocket, connect, next, record } from './support/socket';

/**
 * WS_COALESCE_WRITES (src/chat/write-coalescing.ts): what the server gives one websocket in one
 * event-loop turn leaves in one write call, in order. Counted on the server's TCP socket of the
 * client (the app runs in this process): Node's net.Socket writes through `_write`, or `_writev`
 * for what was corked.
 */
const writes = new Map<number, number>(); // server-side socket's remote port → write calls
const proto = NetSocket.prototype as unknown as Record<
  '_write' | '_writev',
  (this: NetSocket, ...args: unknown[]) => void
>;
const original = { _write: proto._write, _writev: proto._writev };
beforeAll(() => {
  for (const name of ['_write', '_writev'] as const) {
    proto[name] = function (this: NetSocket, ...args: unknown[]) {
      const port = this.remotePort;
      if (port !== undefined && writes.has(port)) writes.set(port, writes.get(port)! + 1);
      return original[name].apply(this, args);
    };
  }
});
afterAll(() => Object.assign(proto, original));

/**
 * Counts the server's writes to this client socket from now on, once what its connecting set
 * off has arrived (with Redis, presence events reach it a few turns later): no write for 200 ms.
 */
async function counter(s: ClientSocket): Promise<() => number> {
  const engine = s.io.engine as unknown as { transport: { ws: { _socket: NetSocket } } };
  const port = engine.transport.ws._socket.localPort!;
  writes.set(port, 0);
  for (let seen = -1; seen !== writes.get(port);) {
    seen = writes.get(port)!;
    await new Promise((r) => setTimeout(r, 200));
  }
  writes.set(port, 0);
  return () => writes.get(port)!;
}

describe.each([
  ['on', 'true', 1],
  ['off', 'false', 2],
])('socket writes with WS_COALESCE_WRITES %s (e2e)', (_label, setting, expectedWrites) => {
  let t: TestApp;
  let alice: TestUser;
  let bob: TestUser;
  let roomId: string;
  const sockets: ClientSocket[] = [];

  beforeAll(async () => {
    t = await startApp({
      ...ADMIN_ENV,
      ...NO_WRITE_LIMITS,
      USER_MAX_INFLIGHT: '100',
      WS_COALESCE_WRITES: setting,
    });
    alice = await newUser(t);
    bob = await newUser(t);
    roomId = (await newRoom(t, await loginAdmin(t))).id;
    await join(t, alice, roomId);
    await join(t, bob, roomId);
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await t.close();
  });

  const open = async (u: TestUser) => {
    const s = await connect(t, u.accessToken);
    sockets.push(s);
    return s;
  };

  /** The server's write calls for one send's ack and its echo to the sender. */
  async function ackAndEchoWrites(s: ClientSocket): Promise<number> {
    const count = await counter(s);
    const clientMsgId = randomUUID();
    const echoed = next(s, 'message.created', (m) => m.clientMsgId === clientMsgId);
    const ack = await call(s, 'message.send', { roomId, clientMsgId, content: 'one write' });
    expect(ack.ok).toBe(true);
    await echoed;
    await new Promise((r) => setTimeout(r, 50)); // nothing else is on its way
    return count();
  }

  it(`a sender's ack and its own message.created take ${expectedWrites} write call(s)`, async () => {
    expect(await ackAndEchoWrites(await open(alice))).toBe(expectedWrites);
  });

  it(`after an upgrade from polling too (${expectedWrites} write call(s) for ack and echo)`, async () => {
    const s = await connect(t, alice.accessToken, { transports: ['polling', 'websocket'] });
    sockets.push(s);
    const engine = s.io.engine as unknown as {
      transport: { name: string };
      once(event: 'upgrade', cb: () => void): void;
    };
    if (engine.transport.name !== 'websocket')
      await new Promise<void>((resolve) => engine.once('upgrade', resolve));
    expect(await ackAndEchoWrites(s)).toBe(expectedWrites);
  });

  it('a burst reaches a member complete and in order', async () => {
    const [sender, member] = [await open(alice), await open(bob)];
    const got = record(member, 'message.created');
    const count = await counter(member);
    const n = 30; // under WS_MAX_INFLIGHT_PER_SOCKET (32)
    const acks = Array.from({ length: n }, (_, i) =>
      call(sender, 'message.send', { roomId, clientMsgId: randomUUID(), content: `burst ${i}` }),
    );
    const failed = (await Promise.all(acks)).filter((a) => !a.ok);
    expect(failed).toEqual([]);
    for (let waited = 0; got.of('message.created').length < n && waited < 5000; waited += 10)
      await new Promise((r) => setTimeout(r, 10));
    const contents = got.of('message.created').map((m) => m.content);
    expect(contents).toEqual(Array.from({ length: n }, (_, i) => `burst ${i}`));
    // Without coalescing each message is its own write (at least n: an unrelated event, such as
    // a presence change arriving late over Redis, may add one); with it, those of one turn (of
    // one send batch) share one: 2 here, at most a few on a loaded machine.
    if (setting === 'true') expect(count()).toBeLessThanOrEqual(10);
    else expect(count()).toBeGreaterThanOrEqual(n);
  });
});
