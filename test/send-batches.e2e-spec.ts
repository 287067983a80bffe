import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { MessageStore } from '../src/messages/message-store';
import { startApp, type TestApp } from './support/app';
import { SERVER_URL } from './support/database';
import {
  ADMIN_ENV,
  join,
  loginAdmin,
  newRoom,
  newUser,
  NO_WRITE_LIMITS,
  type TestRoom,
  type TestUser,
} from './support/factories';
import { type ClientSocket, connect, ok, sleep } from './support/socket';

/**
 * Group commit writes one batch at a time, so batches grow with load; a further batch starts
 * beside it only once the one in flight has run SEND_BATCH_STALL_MS. Here the batch in flight
 * is held on purpose: another session holds room A's lock (the advisory lock the send statement
 * takes per room, as a room's deletion holds it), and a send to room B must wait for the stall
 * threshold, not for room A. Server PostgreSQL only: embedded PGlite serves every connection
 * from one session, where the lock would not block.
 */
const onServer = SERVER_URL ? describe : describe.skip;

onServer('send batches: one in flight, a second after a stall (server PostgreSQL)', () => {
  async function setup(stallMs: number) {
    const t = await startApp({
      ...ADMIN_ENV,
      ...NO_WRITE_LIMITS,
      SEND_BATCH_CONCURRENCY: '2',
      SEND_BATCH_STALL_MS: String(stallMs),
    });
    const admin = await loginAdmin(t);
    const user = await newUser(t);
    const [a, b] = [await newRoom(t, admin), await newRoom(t, admin)];
    await join(t, user, a.id);
    await join(t, user, b.id);
    const socket = await connect(t, user.accessToken);
    return { t, user, a, b, socket };
  }

  /** Holds room's send lock from another session until the returned function is called. */
  async function holdRoomLock(room: TestRoom): Promise<() => Promise<void>> {
    const c = new Client({ connectionString: SERVER_URL });
    await c.connect();
    await c.query(`SELECT pg_advisory_lock(hashtextextended($1::text, 0))`, [room.id]);
    return async () => {
      await c.query(`SELECT pg_advisory_unlock(hashtextextended($1::text, 0))`, [room.id]);
      await c.end();
    };
  }

  /** Until a session waits for an advisory lock (the send batch, stuck on the held room). */
  async function batchWaiting(): Promise<void> {
    const c = new Client({ connectionString: SERVER_URL });
    await c.connect();
    try {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const { rows } = await c.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`,
        );
        if (rows[0].n > 0) return;
        if (Date.now() > deadline) throw new Error('no send batch waiting on the held room');
        await sleep(10);
      }
    } finally {
      await c.end();
    }
  }

  const sendTo = (s: ClientSocket, room: TestRoom, content: string) =>
    ok(s, 'message.send', { roomId: room.id, clientMsgId: randomUUID(), content });

  /** Resolves with the ms from `since` to when `p` settles, or null if it has not by `ms`. */
  async function settlesWithin(
    p: Promise<unknown>,
    ms: number,
    since = performance.now(),
  ): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        p.then(() => performance.now() - since),
        new Promise<null>((r) => (timer = setTimeout(() => r(null), ms))),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  let ctx: { t: TestApp; user: TestUser; a: TestRoom; b: TestRoom; socket: ClientSocket };
  afterEach(async () => {
    ctx.socket.close();
    await ctx.t.close();
  });

  it('a batch held on one room holds the others only until SEND_BATCH_STALL_MS', async () => {
    ctx = await setup(500);
    const { a, b, socket } = ctx;
    const release = await holdRoomLock(a);
    let sentA: Promise<unknown>;
    try {
      const start = performance.now();
      sentA = sendTo(socket, a, 'to the held room');
      await batchWaiting();
      const took = await settlesWithin(sendTo(socket, b, 'to another room'), 10_000, start);
      // Not before the threshold (one batch at a time), and not held until the lock goes.
      expect(took).not.toBeNull();
      expect(took!).toBeGreaterThanOrEqual(450);
      expect(await settlesWithin(sentA, 100)).toBeNull(); // still held
    } finally {
      await release();
    }
    expect(await settlesWithin(sentA, 10_000)).not.toBeNull();
  });

  it('the second batch leaves out the rooms of the one in flight, whose locks it may hold', async () => {
    ctx = await setup(300);
    const { t, user, socket } = ctx;
    const admin = await loginAdmin(t);
    // Two more rooms; the batch takes its rooms' locks in id order, so with `first` sorted
    // before `held` it holds first's lock while it waits for held's.
    const more = [await newRoom(t, admin), await newRoom(t, admin), ctx.a];
    for (const r of more.slice(0, 2)) await join(t, user, r.id);
    const [first, held] = more.sort((x, y) => (x.id < y.id ? -1 : 1));
    const release = await holdRoomLock(held);
    const store = t.app.get(MessageStore);
    const author = { id: user.id, username: user.username, displayName: null };
    const message = (room: TestRoom, content: string) =>
      store.insertUserMessage({ roomId: room.id, author, content, clientMsgId: randomUUID() });
    let stuck: Promise<unknown>;
    try {
      // One batch of both rooms (queued in the same tick).
      stuck = Promise.all([message(first, 'one'), message(held, 'two')]);
      await batchWaiting();
      const start = performance.now();
      const toFirst = sendTo(socket, first, 'three');
      const toB = sendTo(socket, ctx.b, 'four');
      // b is sent after the threshold; first's send waits for the stuck batch, not beside it.
      expect(await settlesWithin(toB, 10_000, start)).not.toBeNull();
      expect(await settlesWithin(toFirst, 300)).toBeNull();
      await release();
      expect(await settlesWithin(toFirst, 10_000)).not.toBeNull();
    } finally {
      await release().catch(() => undefined);
    }
    await stuck;
    const rows = await t.app
      .get(DataSource)
      .query<{ content: string }[]>(
        `SELECT content FROM messages WHERE room_id = $1 AND role = 'user' ORDER BY id`,
        [first.id],
      );
    expect(rows.map((r) => r.content)).toEqual(['one', 'three']);
  });

  it('with a long threshold the next batch waits for the one in flight, then carries every send', async () => {
    ctx = await setup(60_000);
    const { t, a, b, socket } = ctx;
    const release = await holdRoomLock(a);
    const sentA = sendTo(socket, a, 'first');
    await batchWaiting();
    const sentB = Array.from({ length: 5 }, (_, i) => sendTo(socket, b, `b${i}`));
    const all = Promise.all(sentB);
    try {
      expect(await settlesWithin(all, 700)).toBeNull();
    } finally {
      await release();
    }
    await sentA;
    const acked = await all;
    expect(acked.map((m) => m.content)).toEqual(['b0', 'b1', 'b2', 'b3', 'b4']);
    // One transaction (created_at is its start time, to the microsecond), in send order.
    const rows = await t.app
      .get(DataSource)
      .query<{ id: string; created_at: Date; content: string }[]>(
        `SELECT id, created_at::text AS created_at, content FROM messages WHERE room_id = $1 AND role = 'user' ORDER BY id`,
        [b.id],
      );
    expect(rows.map((r) => r.content)).toEqual(['b0', 'b1', 'b2', 'b3', 'b4']);
    expect(new Set(rows.map((r) => String(r.created_at))).size).toBe(1);
  });
});
