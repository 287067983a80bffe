import type { ConfigService } from '@nestjs/config';
import type { Env } from '../config/env';
import { RateLimiter } from '../common/rate-limiter';
import { CommandTracker } from './command-tracker';
import { FairScheduler } from './fair-scheduler';
import type { CommandLimits } from './limits.decorators';
import { RateLimitPolicy } from './rate-limit.policy';

const tick = () => new Promise((r) => setImmediate(r));

describe('FairScheduler', () => {
  it('grants at once while the budget has room, then queues', async () => {
    const s = new FairScheduler(2);
    expect(s.tryAcquire()).toBe(true);
    expect(s.tryAcquire()).toBe(true);
    expect(s.tryAcquire()).toBe(false);
    let granted = false;
    void s.wait('u').then(() => (granted = true));
    await tick();
    expect(granted).toBe(false);
    expect([s.running, s.queued]).toEqual([2, 1]);
    s.release();
    await tick();
    expect(granted).toBe(true);
    expect([s.running, s.queued]).toEqual([2, 0]);
    s.release();
    s.release();
    expect(s.running).toBe(0);
    expect(s.tryAcquire()).toBe(true);
  });

  it('serves waiting users round-robin: a user with 300 queued does not go before others', async () => {
    const s = new FairScheduler(1);
    expect(s.tryAcquire()).toBe(true);
    const order: string[] = [];
    const queue = (user: string, n: number) =>
      Array.from({ length: n }, (_, i) =>
        s.wait(user).then(() => {
          order.push(`${user}${i}`);
        }),
      );
    const all = [...queue('a', 300), ...queue('b', 2), ...queue('c', 1)];
    // Each granted operation finishes, freeing its slot for the next in line.
    for (let i = 0; i < 303; i++) {
      s.release();
      await tick();
    }
    await Promise.all(all);
    s.release();
    expect(order.slice(0, 6)).toEqual(['a0', 'b0', 'c0', 'a1', 'b1', 'a2']);
    expect(order).toHaveLength(303);
    expect(order.slice(6)).toEqual(Array.from({ length: 297 }, (_, i) => `a${i + 3}`));
    expect([s.running, s.queued]).toEqual([0, 0]);
  });

  it('a late user waits at most one turn of each user already waiting, not their whole queue', async () => {
    const s = new FairScheduler(2);
    s.tryAcquire();
    s.tryAcquire();
    const order: string[] = [];
    for (let i = 0; i < 100; i++) void s.wait('flood').then(() => order.push('flood'));
    s.release();
    await tick();
    void s.wait('victim').then(() => order.push('victim'));
    s.release();
    await tick();
    s.release();
    await tick();
    expect(order).toEqual(['flood', 'flood', 'victim']);
  });

  it('refuses a budget below 1', () => {
    expect(() => new FairScheduler(0)).toThrow();
  });
});

describe('CommandTracker', () => {
  const settings: Partial<Env> = {
    WS_MAX_INFLIGHT_PER_SOCKET: 3,
    USER_MAX_INFLIGHT: 4,
    DB_FAIR_CONCURRENCY: 1,
    RATE_LIMIT_WINDOW_MS: 10_000,
    RATE_LIMIT_SEND: 2,
    RATE_LIMIT_EDIT: 100,
    RATE_LIMIT_REACT: 100,
    RATE_LIMIT_ROOMS: 100,
    RATE_LIMIT_TYPING: 100,
    RATE_LIMIT_READ: 100,
  };
  const config = { get: (key: keyof Env) => settings[key] } as unknown as ConfigService<Env, true>;
  const db: CommandLimits = { bucket: undefined, dbBound: true };
  const send: CommandLimits = { bucket: 'send', dbBound: false };
  let memory: RateLimiter;
  let tracker: CommandTracker;
  beforeEach(() => {
    memory = new RateLimiter();
    tracker = new CommandTracker(new RateLimitPolicy(null, memory, config), config);
  });
  afterEach(() => memory.onModuleDestroy());

  const gate = () => {
    let open!: () => void;
    const p = new Promise<void>((r) => (open = r));
    return { p, open };
  };

  it('caps in-flight work per socket and per user (over sockets and REST) with RATE_LIMITED', async () => {
    const g = gate();
    const held = [
      tracker.run('u', 's1', db, () => g.p),
      tracker.run('u', 's1', db, () => g.p),
      tracker.run('u', 's1', db, () => g.p),
    ];
    await expect(tracker.run('u', 's1', db, () => g.p)).rejects.toMatchObject({
      code: 'RATE_LIMITED',
      retryAfterMs: expect.any(Number),
      message: expect.stringMatching(/socket/),
    });
    held.push(tracker.run('u', undefined, db, () => g.p)); // REST counts for the user too
    await expect(tracker.run('u', 's2', db, () => g.p)).rejects.toMatchObject({
      code: 'RATE_LIMITED',
      message: expect.stringMatching(/user/),
    });
    const other = tracker.run('v', 's3', db, () => Promise.resolve('v ran'));
    expect(tracker.running).toBe(5);
    g.open();
    await Promise.all(held);
    await expect(other).resolves.toBe('v ran');
    expect(tracker.running).toBe(0);
    await expect(tracker.run('u', 's1', db, () => Promise.resolve(1))).resolves.toBe(1);
  });

  it('releases every count and the database slot when the work fails', async () => {
    for (let i = 0; i < 10; i++) {
      await expect(
        tracker.run('u', 's1', db, () => Promise.reject(new Error('boom'))),
      ).rejects.toThrow('boom');
    }
    expect(tracker.running).toBe(0);
    expect([tracker.scheduler.running, tracker.scheduler.queued]).toEqual([0, 0]);
    await expect(tracker.run('u', 's1', db, () => Promise.resolve('ok'))).resolves.toBe('ok');
  });

  it('a rate-limited write is refused before it runs, and frees its place', async () => {
    let ran = 0;
    const work = () => Promise.resolve(++ran);
    await tracker.run('u', 's1', send, work);
    await tracker.run('u', undefined, send, work);
    await expect(tracker.run('u', 's2', send, work)).rejects.toMatchObject({
      code: 'RATE_LIMITED',
      retryAfterMs: expect.any(Number),
    });
    expect(ran).toBe(2);
    expect(tracker.running).toBe(0);
    await tracker.run('v', 's3', send, work); // another user's bucket
    expect(ran).toBe(3);
  });

  it('database-bound work from a flooding user does not hold back another user', async () => {
    const order: string[] = [];
    const g = gate();
    // Budget 1: the first holds the slot; the rest queue per user.
    const flood = Array.from({ length: 4 }, (_, i) =>
      tracker.run('flood', `f${i}`, db, async () => {
        order.push(`flood${i}`);
        if (i === 0) await g.p;
      }),
    );
    const victim = tracker.run('victim', 'v', db, () => {
      order.push('victim');
      return Promise.resolve();
    });
    await tick();
    g.open();
    await Promise.all([...flood, victim]);
    expect(order.slice(0, 3)).toEqual(['flood0', 'flood1', 'victim']);
  });
});
