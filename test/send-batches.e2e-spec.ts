import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
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

  const sendTo = (s: ClientSocket, room: TestRoom, content: string) =>
    ok(s, 'message.send', { roomId: room.id, clientMsgId: randomUUID(), content });

  /** Resolves with the ms from now to when `p` settles, or null if it has not by `ms`. */
  async function settlesWithin(p: Promise<unknown>, ms: number): Promise<number | null> {
    const start = performance.now();
    return Promise.race([p.then(() => performance.now() - start), sleep(ms).then(() => null)]);
  }

  let ctx: { t: TestApp; user: TestUser; a: TestRoom; b: TestRoom; socket: ClientSocket };
  afterEach(async () => {
    ctx.socket.close();
    await ctx.t.close();
  });

  it('a batch held on one room holds the others only until SEND_BATCH_STALL_MS', async () => {
    ctx = await setup(200);
    const { a, b, socket } = ctx;
    const release = await holdRoomLock(a);
    let sentA: Promise<unknown>;
    try {
      sentA = sendTo(socket, a, 'to the held room');
      await sleep(50); // its batch is in flight, waiting on the lock
      const start = performance.now();
      const took = await settlesWithin(sendTo(socket, b, 'to another room'), 5000);
      // Not before the threshold (one batch at a time), and soon after it.
      expect(took).not.toBeNull();
      expect(performance.now() - start).toBeGreaterThanOrEqual(100);
      expect(took!).toBeLessThan(2000);
      expect(await settlesWithin(sentA, 100)).toBeNull(); // still held
    } finally {
      await release();
    }
    expect(await settlesWithin(sentA, 5000)).not.toBeNull();
  });

  it('with a long threshold the next batch waits for the one in flight, then carries every send', async () => {
    ctx = await setup(60_000);
    const { t, a, b, socket } = ctx;
    const release = await holdRoomLock(a);
    const sentA = sendTo(socket, a, 'first');
    await sleep(50);
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
