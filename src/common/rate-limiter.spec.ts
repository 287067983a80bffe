import { RateLimiter } from './rate-limiter';

describe('RateLimiter', () => {
  it('allows `limit` hits per window, then answers with the time left', () => {
    const rl = new RateLimiter();
    const t0 = 1_000_000;
    for (let i = 0; i < 3; i++) expect(rl.hit('k', 3, 1000, t0 + i).allowed).toBe(true);
    expect(rl.hit('k', 3, 1000, t0 + 400)).toEqual({ allowed: false, retryAfterMs: 600 });
    expect(rl.hit('other', 3, 1000, t0 + 400).allowed).toBe(true);
    expect(rl.hit('k', 3, 1000, t0 + 1000).allowed).toBe(true);
    rl.onModuleDestroy();
  });
});
