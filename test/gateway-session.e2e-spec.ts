import { startApp, TestApp } from './support/app';
import { newUser } from './support/factories';
import { call, connect, disconnected, next, ok, sleep } from './support/socket';

const api = (path: string) => `/api/v1${path}`;

/** Its own app (short access tokens), so it runs in a file of its own. */
describe('chat gateway: session lifetime (e2e)', () => {
  let short: TestApp;
  beforeAll(async () => {
    short = await startApp({ ACCESS_TOKEN_TTL: '3' });
  });
  afterAll(() => short.close());

  it('disconnects when the access token expires, unless auth.refresh came in time', async () => {
    const u = await newUser(short);
    const s1 = await connect(short, u.accessToken);
    const s2 = await connect(short, u.accessToken);
    const expired = next(s1, 'session.revoked', () => true, 15_000);
    await sleep(1100); // so the refreshed token is issued (and expires) at least a second later
    const refreshed = await short
      .http()
      .post(api('/auth/refresh'))
      .send({ refreshToken: u.refreshToken })
      .expect(200);
    const r = await ok(s2, 'auth.refresh', { accessToken: refreshed.body.accessToken as string });
    expect(r.expiresAt).toBeGreaterThan(Date.now());
    expect(await expired).toEqual({ reason: 'token_expired' });
    await disconnected(s1);
    expect(s2.connected).toBe(true);
    const other = await newUser(short);
    const bad = await call(s2, 'auth.refresh', { accessToken: other.accessToken });
    expect(bad).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    s2.close();
  });
});
