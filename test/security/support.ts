import { createHmac, createSign, generateKeyPairSync } from 'node:crypto';
import { TEST_ENV, type TestApp } from '../support/app';
import { connect } from '../support/socket';

/** Shared by the security suites: hand-made tokens and "is this rejected everywhere" probes. */
export const SECRET = TEST_ENV.JWT_SECRET;

export const b64url = (v: object | string): string =>
  Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** An HS256-style token with any header, signed with any key (no library refuses to make it). */
export function forge(header: object, payload: object, key: string | Buffer = SECRET): string {
  const data = `${b64url(header)}.${b64url(payload)}`;
  return `${data}.${createHmac('sha256', key).update(data).digest('base64url')}`;
}

/** An RS256 token signed with a private key. */
export function signRs256(header: object, payload: object, privateKeyPem: string): string {
  const data = `${b64url({ alg: 'RS256', ...header })}.${b64url(payload)}`;
  const sig = createSign('RSA-SHA256').update(data).sign(privateKeyPem).toString('base64url');
  return `${data}.${sig}`;
}

export function rsaKeys() {
  return generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}

export function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as Record<
    string,
    unknown
  >;
}

/** The REST answer to a token: status and error code of GET /auth/me. */
export async function restVerdict(t: TestApp, token: string) {
  const res = await t
    .http()
    .get('/api/v1/auth/me')
    .set({ Authorization: `Bearer ${token}` });
  return { status: res.status, code: (res.body as { code?: string }).code, body: res.body };
}

/** The socket answer to a token: 'connected', or the connect_error code. */
export async function socketVerdict(t: TestApp, token: string): Promise<string> {
  try {
    const s = await connect(t, token);
    s.close();
    return 'connected';
  } catch (err) {
    return (err as { data?: { code?: string } }).data?.code ?? String(err);
  }
}

/** Every key an error body may have: anything else would be data leaking out of a refusal. */
export const ERROR_KEYS = ['statusCode', 'code', 'message', 'details'];
export function expectErrorOnly(body: unknown): void {
  expect(body).toEqual(expect.any(Object));
  expect(Object.keys(body as object).filter((k) => !ERROR_KEYS.includes(k))).toEqual([]);
}
