import type { Pool } from 'pg';
import { DataSource } from 'typeorm';
import { startApp, type TestApp } from './support/app';
import { sleep } from './support/socket';

/**
 * Idle pool connections are kept 5 minutes by default (DATABASE_POOL_IDLE_MS): a new
 * connection is a new PostgreSQL backend, whose first statements fill its caches and prepare
 * the send statements again, and pg's own default (10 s) closed them between any two bursts.
 */
describe('database pool: idle connections', () => {
  const poolOf = (t: TestApp) =>
    (t.app.get(DataSource).driver as unknown as { master: Pool }).master;
  /** Opens `n` connections at once (as a burst would), then lets them all go idle. */
  async function burst(pool: Pool, n: number) {
    const clients = await Promise.all(Array.from({ length: n }, () => pool.connect()));
    for (const c of clients) c.release();
  }

  it('keeps them 5 minutes by default, with TCP keepalive', async () => {
    const t = await startApp();
    try {
      const pool = poolOf(t);
      expect(pool.options.idleTimeoutMillis).toBe(300_000);
      expect(pool.options).toMatchObject({ keepAlive: true, keepAliveInitialDelayMillis: 30_000 });
    } finally {
      await t.close();
    }
  });

  it('closes them after DATABASE_POOL_IDLE_MS when set', async () => {
    const t = await startApp({ DATABASE_POOL_IDLE_MS: '100' });
    try {
      const pool = poolOf(t);
      await burst(pool, Math.min(pool.options.max, 3));
      expect(pool.totalCount).toBeGreaterThan(0);
      const deadline = Date.now() + 3000;
      // Background jobs (the search index merge every second) may borrow one now and then:
      // it is closed again 100 ms later.
      while (pool.totalCount > 0 && Date.now() < deadline) await sleep(20);
      expect(pool.totalCount).toBe(0);
    } finally {
      await t.close();
    }
  });
});
