import { KeyedSerialQueue } from './reply-queue';

const tick = () => new Promise<void>((r) => setTimeout(r, 5));

describe('KeyedSerialQueue', () => {
  it('runs one job at a time per key, in order; other keys run in parallel', async () => {
    const q = new KeyedSerialQueue(10, () => undefined);
    const log: string[] = [];
    const job = (name: string) => async () => {
      log.push(`${name}+`);
      await tick();
      log.push(`${name}-`);
    };
    q.push('a', job('a1'));
    q.push('a', job('a2'));
    q.push('b', job('b1'));
    expect(q.waiting('a')).toBe(1);
    await q.idle();
    expect(log.filter((l) => l.startsWith('a'))).toEqual(['a1+', 'a1-', 'a2+', 'a2-']);
    expect(log.indexOf('b1+')).toBeLessThan(log.indexOf('a1-'));
  });

  it('refuses jobs beyond maxWaiting, keeps going after a failing job, and can drop waiters', async () => {
    const errors: unknown[] = [];
    const q = new KeyedSerialQueue(1, (e) => errors.push(e));
    const ran: number[] = [];
    const record = (n: number) => () => {
      ran.push(n);
      return Promise.resolve();
    };
    expect(q.push('k', () => Promise.reject(new Error('boom')))).toBe(true);
    expect(q.push('k', record(2))).toBe(true);
    expect(q.push('k', record(3))).toBe(false);
    await q.idle();
    expect(ran).toEqual([2]);
    expect(errors).toHaveLength(1);

    q.push('k', tick);
    q.push('k', record(4));
    q.drop((key) => key === 'k');
    await q.idle();
    expect(ran).toEqual([2]);
    expect(q.push('k', record(5))).toBe(true);
    await q.idle();
    expect(ran).toEqual([2, 5]);
  });
});
