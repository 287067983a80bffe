import { startApp, type TestApp } from '../support/app';
import { newUser, type TestUser } from '../support/factories';
import { call, connect } from '../support/socket';
import { b64url, claimsOf, forge, restVerdict, rsaKeys, signRs256, socketVerdict } from './support';

/**
 * RFC 8725 attacks on the access token, each tried on both doors: REST (GET /auth/me) and the
 * Socket.IO handshake. HS256 is pinned, iss/aud/typ/exp/nbf checked, key headers ignored.
 * (test/auth.e2e-spec.ts holds the REST-only basics; this suite adds the socket door and the
 * header/key attacks.)
 */
describe('security: JWT attacks on REST and socket', () => {
  let t: TestApp;
  let user: TestUser;
  let claims: Record<string, unknown>;
  const now = () => Math.floor(Date.now() / 1000);
  const attacker = rsaKeys();

  beforeAll(async () => {
    t = await startApp();
    user = await newUser(t);
    claims = claimsOf(user.accessToken);
  });
  afterAll(() => t.close());

  it('control: the genuine token and a re-signed copy of it pass both doors', async () => {
    expect((await restVerdict(t, user.accessToken)).status).toBe(200);
    expect(await socketVerdict(t, user.accessToken)).toBe('connected');
    const copy = forge({ alg: 'HS256', typ: 'JWT' }, claims);
    expect((await restVerdict(t, copy)).status).toBe(200);
    expect(await socketVerdict(t, copy)).toBe('connected');
  });

  const attacks: [string, () => string, string?][] = [
    ['alg none, no signature', () => `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims)}.`],
    [
      'alg none with the genuine signature',
      () => `${b64url({ alg: 'none' })}.${b64url(claims)}.${user.accessToken.split('.')[2]}`,
    ],
    ['alg "None" (case games)', () => `${b64url({ alg: 'None' })}.${b64url(claims)}.`],
    ['HS256 signed with another key', () => forge({ alg: 'HS256' }, claims, 'x'.repeat(48))],
    ['HS256 signed with an empty key', () => forge({ alg: 'HS256' }, claims, '')],
    [
      'RS/HS confusion: HS256 signed with an RSA public key PEM as the secret',
      () => forge({ alg: 'HS256' }, claims, attacker.publicKey),
    ],
    ['RS256 signed with an attacker private key', () => signRs256({}, claims, attacker.privateKey)],
    [
      'jwk header carrying the attacker key (RS256)',
      () =>
        signRs256(
          { jwk: { kty: 'RSA', n: 'AQAB', e: 'AQAB' }, kid: 'attacker' },
          claims,
          attacker.privateKey,
        ),
    ],
    [
      'jku header pointing at an attacker key set',
      () => signRs256({ jku: 'http://127.0.0.1:1/jwks.json' }, claims, attacker.privateKey),
    ],
    [
      'x5u header pointing at an attacker certificate',
      () => signRs256({ x5u: 'http://127.0.0.1:1/cert.pem' }, claims, attacker.privateKey),
    ],
    [
      'kid path traversal with an empty key',
      () => forge({ alg: 'HS256', kid: '../../../../dev/null' }, claims, ''),
    ],
    [
      'expired',
      () => forge({ alg: 'HS256' }, { ...claims, iat: now() - 100, exp: now() - 10 }),
      'TOKEN_EXPIRED',
    ],
    [
      'not yet valid (nbf in the future)',
      () => forge({ alg: 'HS256' }, { ...claims, nbf: now() + 3600 }),
    ],
    ['wrong issuer', () => forge({ alg: 'HS256' }, { ...claims, iss: 'evil' })],
    ['wrong audience', () => forge({ alg: 'HS256' }, { ...claims, aud: 'evil' })],
    ['no issuer', () => forge({ alg: 'HS256' }, { ...claims, iss: undefined })],
    ['no typ claim', () => forge({ alg: 'HS256' }, { ...claims, typ: undefined })],
    ['typ: refresh (a refresh token as access)', () => user.refreshToken],
    [
      'unknown session id',
      () => forge({ alg: 'HS256' }, { ...claims, sid: '00000000-0000-4000-8000-000000000000' }),
    ],
    [
      'sub swapped to another user',
      () => forge({ alg: 'HS256' }, { ...claims, sub: '00000000-0000-4000-8000-000000000001' }),
    ],
    ['garbage', () => 'not.a.jwt'],
    ['truncated signature', () => user.accessToken.slice(0, -5)],
  ];

  // A loop, not it.each: Jest would pass its `done` callback in place of a missing code.
  for (const [name, make, code] of attacks) {
    it(`rejects ${name} on REST (401) and on the socket`, async () => {
      const token = make();
      const rest = await restVerdict(t, token);
      expect(rest.status).toBe(401);
      expect(rest.code).toBe(code ?? 'UNAUTHORIZED');
      expect(rest.body.username).toBeUndefined();
      expect(await socketVerdict(t, token)).toBe(code ?? 'UNAUTHORIZED');
    });
  }

  it('key-carrying headers are ignored: a genuine HS256 token with jku/x5u/jwk still works, verified with our key', async () => {
    const header = {
      alg: 'HS256',
      jku: 'http://127.0.0.1:1/jwks.json',
      x5u: 'http://127.0.0.1:1/cert.pem',
      jwk: { kty: 'oct', k: b64url('attacker-key') },
      kid: 'attacker',
    };
    const token = forge(header, claims);
    expect((await restVerdict(t, token)).status).toBe(200);
    expect(await socketVerdict(t, token)).toBe('connected');
    // …and the same header with the attacker's key named in `jwk` is refused.
    const evil = forge(header, claims, 'attacker-key');
    expect((await restVerdict(t, evil)).status).toBe(401);
    expect(await socketVerdict(t, evil)).toBe('UNAUTHORIZED');
  });

  it('an access token is refused as a refresh token, and on auth.refresh a refresh token is refused', async () => {
    const res = await t
      .http()
      .post('/api/v1/auth/refresh')
      .send({ refreshToken: user.accessToken })
      .expect(401);
    expect(res.body.accessToken).toBeUndefined();
    const s = await connect(t, user.accessToken);
    try {
      const ack = await call(s, 'auth.refresh', { accessToken: user.refreshToken });
      expect(ack).toMatchObject({ ok: false, error: { code: 'UNAUTHORIZED' } });
    } finally {
      s.close();
    }
  });
});
