import { randomUUID } from 'node:crypto';
import { startApp, type TestApp } from '../support/app';
import {
  ADMIN_ENV,
  NO_WRITE_LIMITS,
  join,
  loginAdmin,
  newRoom,
  newUser,
  type TestRoom,
  type TestUser,
} from '../support/factories';
import { call, type ClientSocket, connect, next } from '../support/socket';
import { expectErrorOnly } from './support';

/**
 * Injection and bad data (OWASP API8, ASVS V1/V2): wrong types, operator objects, SQL
 * metacharacters, huge strings, NUL bytes, invalid UTF-8, emoji edge cases. Each answer is a
 * 400 or the text stored as inert data: never a 500. Markup is stored and returned verbatim.
 */
describe('security: injection and bad data', () => {
  let t: TestApp;
  let user: TestUser;
  let room: TestRoom;
  let s: ClientSocket;
  const messages = () => `/api/v1/rooms/${room.id}/messages`;

  beforeAll(async () => {
    t = await startApp({ ...ADMIN_ENV, ...NO_WRITE_LIMITS });
    const admin = await loginAdmin(t);
    user = await newUser(t);
    room = await newRoom(t, admin);
    await join(t, user, room.id);
    s = await connect(t, user.accessToken);
  });
  afterAll(async () => {
    s.close();
    await t.close();
  });

  const post = (body: unknown) =>
    t
      .http()
      .post(messages())
      .set(user.auth)
      .send(body as object);

  /** 400 with the one error shape, or a stored message whose content is exactly what was sent. */
  async function rejectedOrInert(body: Record<string, unknown>) {
    const res = await post(body);
    expect([201, 400]).toContain(res.status);
    if (res.status === 400) {
      expect(res.body.code).toBe('VALIDATION_FAILED');
      expectErrorOnly(res.body);
    } else {
      expect(res.body.content).toBe((body.content as string).trim());
    }
    return res;
  }

  describe('wrong types where strings or ids are expected: 400', () => {
    const values: [string, unknown][] = [
      ['object', { a: 1 }],
      ['array', ['x']],
      ['operator object', { $ne: null }],
      ['operator object $gt', { $gt: '' }],
      ['number', 42],
      ['boolean', true],
      ['null', null],
      ['nested array', [[['x']]]],
    ];
    it.each(values)('content as %s', async (_, v) => {
      const res = await post({ clientMsgId: randomUUID(), content: v });
      expect(res.status).toBe(400);
      expect(res.body.details).toHaveProperty('content');
    });
    it.each(values)('clientMsgId as %s', async (_, v) => {
      const res = await post({ clientMsgId: v, content: 'x' });
      expect(res.status).toBe(400);
      expect(res.body.details).toHaveProperty('clientMsgId');
    });
    it.each(values)('login username and password as %s (no operator injection)', async (_, v) => {
      const res = await t.http().post('/api/v1/auth/login').send({ username: v, password: v });
      expect(res.status).toBe(400);
      expect(res.body.accessToken).toBeUndefined();
    });
    it('replyToId, before/after, limit as objects, arrays or huge numbers', async () => {
      for (const replyToId of [{ $ne: null }, [1], '1 OR 1=1', 1e300, -1, 1.5, '9007199254740993'])
        expect((await post({ clientMsgId: randomUUID(), content: 'x', replyToId })).status).toBe(
          400,
        );
      for (const q of [
        'before[$ne]=1',
        'before=1%20OR%201=1',
        'limit=1e9',
        'after=-1',
        'before=1&before=2',
        'limit=NaN',
      ]) {
        const res = await t.http().get(`${messages()}?${q}`).set(user.auth);
        expect(res.status).toBe(400);
      }
    });
    it('ids in paths that are not uuids or integers are 400, not database errors', async () => {
      for (const path of [
        "/api/v1/rooms/1'%20OR%20'1'='1/messages",
        '/api/v1/rooms/%00/messages',
        '/api/v1/messages/1;DROP%20TABLE%20messages',
        '/api/v1/messages/99999999999999999999999',
        '/api/v1/users/..%2F..%2Fetc%2Fpasswd',
      ]) {
        const res = await t.http().get(path).set(user.auth);
        expect([400, 404]).toContain(res.status);
      }
    });
  });

  describe('text is stored inert, verbatim', () => {
    it.each([
      ['SQL metacharacters', `'; DROP TABLE messages; -- " \\ % _ $1 $$ E'\\x00'`],
      ['a LIKE and regex soup', `%_[]^$.*+?(){}|\\`],
      ['script tag', '<script>alert(document.cookie)</script>'],
      ['img onerror', '<img src=x onerror="alert(1)">'],
      ['javascript url', '[click](javascript:alert(1))'],
      ['template injection', '{{constructor.constructor("alert(1)")()}} ${process.exit()}'],
      ['JSON-looking text', '{"$ne": null, "__proto__": {"admin": true}}'],
      ['emoji ZWJ family + skin tones + flags', '👨‍👩‍👧‍👦 👍🏽 🏳️‍🌈 🇺🇦 #️⃣'],
      ['right-to-left override and zero-width characters', 'abc\u202Edcb\u200B\u200D\uFEFF'],
      ['combining characters', 'Z̷̡̢̛̛̛̼̣̘̯͖̝̥͇͕̖̱a̸l̷g̴o̶'],
      ['CRLF and tabs', 'line1\r\nline2\tend'],
    ])('%s', async (_, content) => {
      const res = await rejectedOrInert({ clientMsgId: randomUUID(), content });
      expect(res.status).toBe(201);
      const page = await t
        .http()
        .get(messages())
        .query({ after: res.body.id - 1, limit: 1 })
        .set(user.auth)
        .expect(200);
      expect(page.body.items[0].content).toBe(content.trim());
      expect(page.headers['content-type']).toMatch(/^application\/json/);
    });

    it('markup arrives verbatim over the socket too (rendering it inert is the client’s job)', async () => {
      const content = '<img src=x onerror=alert(1)><script>alert(2)</script>';
      const created = next(s, 'message.created', (m) => m.content === content);
      const ack = await call(s, 'message.send', {
        roomId: room.id,
        clientMsgId: randomUUID(),
        content,
      });
      expect(ack).toMatchObject({ ok: true, data: { content } });
      expect((await created).content).toBe(content);
    });

    it('search takes metacharacters and operators as words, never as SQL', async () => {
      for (const q of [
        `' OR 1=1 --`,
        '"unterminated',
        '!!!',
        ':* & | <->',
        '-',
        'or or or',
        '\\',
      ]) {
        const res = await t.http().get(`${messages()}/search`).query({ q }).set(user.auth);
        expect(res.status).toBe(200);
      }
    });
  });

  describe('NUL bytes, invalid UTF-8, sizes', () => {
    it('NUL (U+0000) in any stored or looked-up text is a 400, never a 500', async () => {
      expect((await post({ clientMsgId: randomUUID(), content: 'a\u0000b' })).status).toBe(400);
      const login = await t
        .http()
        .post('/api/v1/auth/login')
        .send({ username: 'a\u0000b', password: 'whatever-1' });
      expect(login.status).toBe(400);
      expect(
        (await t.http().get(`${messages()}/search`).query({ q: 'a\u0000' }).set(user.auth)).status,
      ).toBe(400);
      expect(
        (
          await t
            .http()
            .get(`/api/v1/rooms/${room.id}/members`)
            .query({ after: 'a\u0000' })
            .set(user.auth)
        ).status,
      ).toBe(400);
      const signupName = `n${randomUUID().slice(0, 6)}`;
      const signup = await t
        .http()
        .post('/api/v1/auth/signup')
        .send({
          username: signupName,
          email: `${signupName}@x.io`,
          password: 'pass\u0000word1',
          displayName: 'x\u0000',
        });
      expect(signup.status).toBe(400);
      const ack = await call(s, 'message.send', {
        roomId: room.id,
        clientMsgId: randomUUID(),
        content: '\u0000',
      });
      expect(ack).toMatchObject({ ok: false, error: { code: 'VALIDATION_FAILED' } });
    });

    it('invalid UTF-8 bytes, lone surrogates and foreign charsets: stored as U+FFFD or refused, never a 500', async () => {
      const raw = (body: Buffer | string, type = 'application/json') =>
        fetch(t.url + messages(), {
          method: 'POST',
          headers: { 'content-type': type, authorization: user.auth.Authorization },
          body,
        });
      const bad = await raw(
        Buffer.concat([
          Buffer.from(`{"clientMsgId":"${randomUUID()}","content":"ok `),
          Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80]),
          Buffer.from('"}'),
        ]),
      );
      expect(bad.status).toBe(201);
      expect(((await bad.json()) as { content: string }).content).toMatch(/^ok \uFFFD/);
      const lone = await raw(`{"clientMsgId":"${randomUUID()}","content":"half \\ud83d a pair"}`);
      expect([201, 400]).toContain(lone.status);
      const latin1 = await raw(
        Buffer.from(`{"clientMsgId":"${randomUUID()}","content":"caf\xe9"}`, 'latin1'),
        'application/json; charset=latin1',
      );
      expect(latin1.status).toBe(400);
      expect(((await latin1.json()) as { code: string }).code).toBe('VALIDATION_FAILED');
      const utf16 = await raw(
        Buffer.from(`{"clientMsgId":"${randomUUID()}","content":"x"}`, 'utf16le'),
        'application/json; charset=utf-16',
      );
      expect([201, 400]).toContain(utf16.status);
    });

    it('malformed JSON, wrong content types and prototype keys: 400/415, never a 500', async () => {
      for (const body of ['{"content":', '[]', 'null', '"string"', '{"a":1}}', '\u0000']) {
        const res = await t
          .http()
          .post(messages())
          .set(user.auth)
          .set('content-type', 'application/json')
          .send(body);
        expect(res.status).toBe(400);
      }
      // `__proto__` and `constructor` keys: refused or dropped, never merged into a prototype.
      const proto = await t
        .http()
        .post(messages())
        .set(user.auth)
        .set('content-type', 'application/json')
        .send(
          `{"clientMsgId":"${randomUUID()}","content":"x","__proto__":{"role":"admin","isAdmin":true},"constructor":{"prototype":{"polluted":1}}}`,
        );
      expect([201, 400]).toContain(proto.status);
      expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      const me = await t.http().get('/api/v1/auth/me').set(user.auth).expect(200);
      expect(me.body.role).toBe('user');
      const form = await t
        .http()
        .post(messages())
        .set(user.auth)
        .type('form')
        .send('clientMsgId=a&content=b');
      expect([400, 415]).toContain(form.status);
    });

    it('very long strings: 400 at the message limit, 413 past the body limit', async () => {
      expect((await post({ clientMsgId: randomUUID(), content: 'x'.repeat(4001) })).status).toBe(
        400,
      );
      expect((await post({ clientMsgId: randomUUID(), content: 'x'.repeat(4000) })).status).toBe(
        201,
      );
      // 2,000 emoji are 4,000 UTF-16 units: at the limit, accepted.
      expect((await post({ clientMsgId: randomUUID(), content: '😀'.repeat(2000) })).status).toBe(
        201,
      );
      const big = await post({ clientMsgId: randomUUID(), content: 'x'.repeat(300_000) });
      expect(big.status).toBe(413);
      expect(big.body.code).toBe('PAYLOAD_TOO_LARGE');
      expect((await post({ clientMsgId: 'x'.repeat(65), content: 'x' })).status).toBe(400);
      const q = await t
        .http()
        .get(`${messages()}/search`)
        .query({ q: 'x'.repeat(201) })
        .set(user.auth);
      expect(q.status).toBe(400);
      const longUrl = await t
        .http()
        .get(`${messages()}?before=${'9'.repeat(5000)}`)
        .set(user.auth);
      expect(longUrl.status).toBe(400);
    });

    it('deeply nested JSON is a 400 on REST and an error ack on the socket, never a 500', async () => {
      const deep = '['.repeat(5000) + '1' + ']'.repeat(5000);
      const res = await t
        .http()
        .post(messages())
        .set(user.auth)
        .set('content-type', 'application/json')
        .send(`{"clientMsgId":"${randomUUID()}","content":${deep}}`);
      expect(res.status).toBe(400);
      let nested: unknown = 1;
      for (let i = 0; i < 2000; i++) nested = [nested];
      const ack = await call(s, 'message.send', {
        roomId: room.id,
        clientMsgId: randomUUID(),
        content: nested as string,
      });
      expect(ack).toMatchObject({ ok: false, error: { code: 'VALIDATION_FAILED' } });
    });
  });

  describe('emoji reactions', () => {
    let messageId: number;
    beforeAll(async () => {
      messageId = (await post({ clientMsgId: randomUUID(), content: 'react to me' })).body.id;
    });
    const react = (emoji: string) =>
      t
        .http()
        .put(`/api/v1/messages/${messageId}/reactions/${encodeURIComponent(emoji)}`)
        .set(user.auth);
    it.each(['👍', '👍🏽', '👨‍👩‍👧‍👦', '🏳️‍🌈', '🇺🇦', ':thumbs_up:', '❤️'])('accepts %s', async (emoji) => {
      expect((await react(emoji)).status).toBe(200);
    });
    it.each([
      ['markup', '<script>'],
      ['SQL', "'; --"],
      ['digits only', '123'],
      ['NUL', '\u0000'],
      ['33 emoji (the limit is 32)', '👍'.repeat(33)],
      ['text', 'hello'],
      ['path traversal', '../../x'],
      ['RTL override', '\u202E👍'],
    ])('rejects %s with 400', async (_, emoji) => {
      expect((await react(emoji)).status).toBe(400);
    });
  });

  describe('list cursors', () => {
    it('a cursor shaped like one but without a UUID is a 400 on /rooms and /conversations, not a 500', async () => {
      const bad = [
        '1_------------------------------------',
        '1_0123456789abcdef0123456789abcdef0123',
        '1_zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz',
        '1_0123-4567-89ab-cdef-0123456789abcdef0',
      ];
      for (const path of ['/api/v1/rooms', '/api/v1/conversations']) {
        for (const cursor of bad) {
          const res = await t.http().get(path).query({ cursor }).set(user.auth);
          expect({ path, cursor, status: res.status, code: res.body.code }).toEqual({
            path,
            cursor,
            status: 400,
            code: 'VALIDATION_FAILED',
          });
        }
        // A well-formed cursor still works.
        const ok = await t
          .http()
          .get(path)
          .query({ cursor: `5_${randomUUID()}` })
          .set(user.auth);
        expect(ok.status).toBe(200);
      }
    });
  });
});
