import type { ConfigService } from '@nestjs/config';
import type { DataSource } from 'typeorm';
import type { Env } from '../config/env';
import { MessageStore, type NewUserMessage } from './message-store';
import { MetricsService } from '../metrics/metrics.service';

/**
 * The group commit's scheduling, with the database replaced by batches the test finishes when
 * it says so: one batch in flight, a second only after SEND_BATCH_STALL_MS and only of rooms
 * no batch in flight has, nothing left behind. (test/send-batches.e2e-spec.ts shows the same
 * against a real room lock on server PostgreSQL.)
 */
interface Written {
  rooms: string[];
  finish: () => void;
  fail: () => void;
}

function storeWith(settings: { max?: number; concurrency?: number; stallMs: number }) {
  const values: Partial<Record<keyof Env, unknown>> = {
    SEND_BATCH_MAX: settings.max ?? 256,
    SEND_BATCH_CONCURRENCY: settings.concurrency ?? 2,
    SEND_BATCH_STALL_MS: settings.stallMs,
  };
  const config = { get: (k: keyof Env) => values[k] } as unknown as ConfigService<Env, true>;
  const store = new MessageStore(
    {} as DataSource,
    config,
    { url: 'postgres://unused' },
    new MetricsService({} as DataSource),
  );
  const written: Written[] = [];
  let id = 0;
  let failing = false;
  (
    store as unknown as { insertBatch: (items: NewUserMessage[]) => Promise<unknown[]> }
  ).insertBatch = (items) =>
    new Promise((resolve, reject) => {
      const rows = items.map((m) => ({
        id: String(++id),
        version: String(id),
        room_id: m.roomId,
        author_id: m.author.id,
        persona_id: null,
        role: 'user',
        content: m.content,
        reply_to_id: null,
        client_msg_id: m.clientMsgId,
        created_at: new Date(),
        edited_at: null,
        deleted_at: null,
        finish_reason: null,
        mentions: [],
        thread_root_id: null,
        reply_count: 0,
        last_reply_at: null,
        thread_participants: [],
        root_version: null,
      }));
      written.push({
        rooms: items.map((m) => m.roomId),
        finish: () => resolve(rows),
        fail: () => (failing && items.length > 1 ? reject(new Error('bad row')) : resolve(rows)),
      });
    });
  let n = 0;
  const send = (roomId: string) =>
    store.insertUserMessage({
      roomId,
      author: { id: 'u1', username: 'u1', displayName: null },
      content: `m${++n}`,
      clientMsgId: `c${n}`,
    });
  return { store, written, send, setFailing: (f: boolean) => (failing = f) };
}

const tick = () => new Promise((r) => setImmediate(r));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('MessageStore group commit: batches that grow with load', () => {
  it('writes one batch at a time: what arrives meanwhile goes in the next one, together', async () => {
    const { written, send } = storeWith({ stallMs: 60_000 });
    const first = send('a');
    await tick();
    expect(written).toHaveLength(1);
    const rest = [send('b'), send('c'), send('a')];
    await tick();
    expect(written).toHaveLength(1); // not before the stall threshold
    written[0].finish();
    await first;
    await tick();
    expect(written.map((w) => w.rooms)).toEqual([['a'], ['b', 'c', 'a']]);
    written[1].finish();
    expect((await Promise.all(rest)).map((m) => m?.content)).toEqual(['m2', 'm3', 'm4']);
  });

  it('starts a second batch after SEND_BATCH_STALL_MS, without the rooms of the one in flight', async () => {
    const { written, send } = storeWith({ stallMs: 40 });
    const stuck = send('a'); // say, room a is being deleted and holds its lock
    await tick();
    const others = [send('a'), send('b'), send('c')];
    await sleep(15);
    expect(written).toHaveLength(1);
    await sleep(60);
    // Room a's second send waits for the first batch: it would wait on the same lock, and
    // a room's sends commit in the order they arrived.
    expect(written.map((w) => w.rooms)).toEqual([['a'], ['b', 'c']]);
    written[1].finish();
    expect((await Promise.all(others.slice(1))).map((m) => m?.roomId)).toEqual(['b', 'c']);
    // A send to another room starts beside the stuck batch at once (its stall is long past).
    const more = send('d');
    await sleep(60);
    expect(written).toHaveLength(3); // d started beside the stuck batch (b and c are done)
    expect(written[2].rooms).toEqual(['d']);
    written[2].finish();
    await more;
    written[0].finish();
    await stuck;
    await tick();
    expect(written[3].rooms).toEqual(['a']);
    written[3].finish();
    expect((await others[0])?.content).toBe('m2');
  });

  it('SEND_BATCH_STALL_MS=0 starts batches at once, up to SEND_BATCH_CONCURRENCY', async () => {
    const { written, send } = storeWith({ stallMs: 0, concurrency: 2 });
    const sent = [send('a')];
    await tick();
    sent.push(send('b'));
    await tick();
    sent.push(send('c'));
    await tick();
    expect(written.map((w) => w.rooms)).toEqual([['a'], ['b']]);
    written[0].finish();
    await tick();
    await tick();
    expect(written[2].rooms).toEqual(['c']);
    for (const w of written.slice(1)) w.finish();
    await Promise.all(sent);
  });

  it('leaves no send behind, whatever the batch size, concurrency, stall and failures', async () => {
    for (const [max, concurrency, stallMs] of [
      [1, 1, 0],
      [3, 2, 0],
      [3, 2, 5],
      [2, 3, 1],
      [256, 2, 10],
    ] as const) {
      const { written, send, setFailing } = storeWith({ max, concurrency, stallMs });
      setFailing(true);
      const rooms = ['a', 'b', 'c', 'd'];
      const sent: Promise<unknown>[] = [];
      const settled = new Set<Written>();
      // The database finishes batches in a random order, some failing (then written one by one).
      const db = setInterval(() => {
        const open = written.filter((w) => !settled.has(w));
        if (!open.length) return;
        const w = open[Math.floor(Math.random() * open.length)];
        settled.add(w);
        if (Math.random() < 0.3) w.fail();
        else w.finish();
      }, 1);
      for (let i = 0; i < 60; i++) {
        sent.push(send(rooms[i % rooms.length]));
        if (i % 7 === 0) await sleep(2);
      }
      const results = await Promise.all(sent);
      clearInterval(db);
      expect(results.every((m) => m !== null)).toBe(true);
    }
  });
});
