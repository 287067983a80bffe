import type { IncomingMessage } from 'node:http';
import { tokenOf } from './socket-sessions.service';
import { originAllowed } from './io-adapter';

const handshake = (h: {
  auth?: object;
  headers?: Record<string, string>;
  query?: Record<string, string>;
}) =>
  ({
    handshake: { auth: h.auth ?? {}, headers: h.headers ?? {}, query: h.query ?? {} },
  }) as unknown as Parameters<typeof tokenOf>[0];

describe('socket handshake token', () => {
  it('takes auth.token first, then Authorization: Bearer, then ?token=', () => {
    expect(
      tokenOf(
        handshake({
          auth: { token: 'a' },
          headers: { authorization: 'Bearer b' },
          query: { token: 'c' },
        }),
      ),
    ).toBe('a');
    expect(
      tokenOf(handshake({ headers: { authorization: 'Bearer b' }, query: { token: 'c' } })),
    ).toBe('b');
    expect(tokenOf(handshake({ query: { token: 'c' } }))).toBe('c');
    expect(tokenOf(handshake({ auth: { token: 'Bearer a' } }))).toBe('a');
  });

  it('finds nothing in empty, non-string or non-bearer values', () => {
    expect(tokenOf(handshake({}))).toBeUndefined();
    expect(
      tokenOf(handshake({ auth: { token: 42 }, headers: { authorization: 'Basic xyz' } })),
    ).toBeUndefined();
    expect(tokenOf(handshake({ query: { token: '' } }))).toBeUndefined();
  });
});

describe('socket origin check', () => {
  const req = (origin: string | undefined, host = 'chat.example.com') =>
    ({ headers: { ...(origin ? { origin } : {}), host } }) as unknown as IncomingMessage;

  it('allows clients without Origin (mobile, Node), the same origin, and the allow-list', () => {
    expect(originAllowed(req(undefined), [])).toBe(true);
    expect(originAllowed(req('https://chat.example.com'), [])).toBe(true);
    expect(originAllowed(req('https://app.example.com'), ['https://app.example.com'])).toBe(true);
  });

  it('refuses other origins and garbage', () => {
    expect(originAllowed(req('https://evil.example'), ['https://app.example.com'])).toBe(false);
    expect(originAllowed(req('not a url'), [])).toBe(false);
  });
});
