import { createHmac, randomUUID } from 'node:crypto';
import type { MessageDto } from '../src/messages/dto/message.dto';
import { startApp, TestApp, TEST_ENV } from './support/app';
import {
  ADMIN_ENV,
  join,
  loginAdmin,
  newRoom,
  newUser,
  send,
  TestRoom,
  TestUser,
} from './support/factories';
import {
  call,
  ClientSocket,
  connect,
  disconnected,
  next,
  ok,
  record,
  sleep,
} from './support/socket';

const api = (path: string) => `/api/v1${path}`;

function forgeExpired(token: string): string {
  const [h, p] = token.split('.');
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, number>;
  const body = Buffer.from(
    JSON.stringify({ ...claims, iat: claims.iat - 3600, exp: claims.iat - 60 }),
  ).toString('base64url');
  const sig = createHmac('sha256', TEST_ENV.JWT_SECRET).update(`${h}.${body}`).digest('base64url');
  return `${h}.${body}.${sig}`;
}

describe('chat gateway (e2e)', () => {
  let t: TestApp;
  let admin: TestUser;
  const sockets: ClientSocket[] = [];
  const open = async (token: string, opts?: Parameters<typeof connect>[2]) => {
    const s = await connect(t, token, opts);
    sockets.push(s);
    return s;
  };

  beforeAll(async () => {
    t = await startApp({
      ...ADMIN_ENV,
      RATE_LIMIT_SEND: '1000',
      RATE_LIMIT_TYPING: '30',
      USER_MAX_INFLIGHT: '64',
      WS_MAX_PAYLOAD_BYTES: '8192',
      TYPING_TIMEOUT_MS: '600',
    });
    admin = await loginAdmin(t);
  });
  afterEach(() => {
    for (const s of sockets.splice(0)) s.close();
  });
  afterAll(() => t.close());

  async function roomWith(...users: TestUser[]): Promise<TestRoom> {
    const room = await newRoom(t, admin);
    for (const u of users) await join(t, u, room.id);
    return room;
  }

  describe('handshake', () => {
    it('accepts auth.token, Authorization: Bearer and ?token=', async () => {
      const u = await newUser(t);
      await open(u.accessToken);
      await open('', {
        extraHeaders: { Authorization: `Bearer ${u.accessToken}` },
        transports: ['polling', 'websocket'],
      });
      await open('', { query: { token: u.accessToken } });
    });

    it.each([
      ['no token', () => undefined, 'UNAUTHORIZED'],
      ['a bad signature', (u: TestUser) => u.accessToken.slice(0, -4) + 'AAAA', 'UNAUTHORIZED'],
      ['an expired token', (u: TestUser) => forgeExpired(u.accessToken), 'TOKEN_EXPIRED'],
      ['a refresh token', (u: TestUser) => u.refreshToken, 'UNAUTHORIZED'],
    ])('rejects %s with connect_error', async (_, token, code) => {
      const u = await newUser(t);
      const err = (await connect(t, token(u)).then(
        () => null,
        (e: unknown) => e,
      )) as { data?: { code: string } } | null;
      expect(err?.data?.code).toBe(code);
    });

    it('rejects a revoked session, and logout over REST disconnects a live socket with session.revoked', async () => {
      const u = await newUser(t);
      const s = await open(u.accessToken);
      const revoked = next(s, 'session.revoked');
      const gone = disconnected(s);
      await t.http().post(api('/auth/logout')).set(u.auth).expect(204);
      expect(await revoked).toEqual({ reason: 'logout' });
      await gone;
      const err = (await connect(t, u.accessToken).catch((e: unknown) => e)) as {
        data?: { code: string };
      };
      expect(err.data?.code).toBe('UNAUTHORIZED');
    });

    it('disabling a user disconnects their live sockets', async () => {
      const u = await newUser(t);
      const s = await open(u.accessToken);
      const revoked = next(s, 'session.revoked');
      await t
        .http()
        .patch(api(`/users/${u.id}`))
        .set(admin.auth)
        .send({ disabled: true })
        .expect(200);
      expect((await revoked).reason).toBe('user_disabled');
      await disconnected(s);
    });

    it('rejects browser origins that are not allowed', async () => {
      const u = await newUser(t);
      const err = await connect(t, u.accessToken, {
        extraHeaders: { Origin: 'https://evil.example' },
        transports: ['polling'],
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
    });
  });

  describe('messages', () => {
    it('send → ack with the stored message; the other member gets message.created once; a retry is not re-delivered', async () => {
      const [a, b] = [await newUser(t), await newUser(t)];
      const room = await roomWith(a, b);
      const [sa, sb] = [await open(a.accessToken), await open(b.accessToken)];
      const seen = record(sb, 'message.created');
      const clientMsgId = randomUUID();
      const first = await ok(sa, 'message.send', {
        roomId: room.id,
        clientMsgId,
        content: 'hello b',
      });
      expect(first).toMatchObject({
        roomId: room.id,
        content: 'hello b',
        clientMsgId,
        author: { id: a.id },
      });
      const retry = await ok(sa, 'message.send', {
        roomId: room.id,
        clientMsgId,
        content: 'hello b',
      });
      expect(retry.id).toBe(first.id);
      // REST send reaches sockets too
      const arrived = next(sb, 'message.created', (m) => m.content === 'from rest');
      const viaRest = await send(t, a, room.id, 'from rest');
      expect((await arrived).id).toBe(viaRest.id);
      expect(seen.of('message.created').map((m) => m.content)).toEqual(['hello b', 'from rest']);
      const stored = await t
        .http()
        .get(api(`/rooms/${room.id}/messages`))
        .set(b.auth)
        .expect(200);
      expect((stored.body.items as MessageDto[]).some((m) => m.id === first.id)).toBe(true);
    });

    it('a room id sent in upper case: the message reaches the room live, its id as stored; a retry is the same message', async () => {
      const [a, b] = [await newUser(t), await newUser(t)];
      const room = await roomWith(a, b);
      const [sa, sb] = [await open(a.accessToken), await open(b.accessToken)];
      const clientMsgId = randomUUID();
      const arrived = next(sb, 'message.created', (m) => m.clientMsgId === clientMsgId);
      const upper = { roomId: room.id.toUpperCase(), clientMsgId, content: 'SHOUTED ID' };
      const sent = await ok(sa, 'message.send', upper);
      expect(sent.roomId).toBe(room.id);
      expect((await arrived).roomId).toBe(room.id);
      expect((await ok(sa, 'message.send', upper)).id).toBe(sent.id);
    });

    it('edit, delete and reaction events arrive', async () => {
      const [a, b] = [await newUser(t), await newUser(t)];
      const room = await roomWith(a, b);
      const [sa, sb] = [await open(a.accessToken), await open(b.accessToken)];
      const m = await ok(sa, 'message.send', {
        roomId: room.id,
        clientMsgId: randomUUID(),
        content: 'v1',
      });
      const updated = next(sb, 'message.updated');
      await ok(sa, 'message.edit', { messageId: m.id, content: 'v2' });
      expect((await updated).content).toBe('v2');
      const reacted = next(sb, 'reaction.updated');
      const r = await ok(sb, 'reaction.add', { messageId: m.id, emoji: '🔥' });
      expect(r.reactions[0]).toMatchObject({ emoji: '🔥', count: 1, me: true });
      expect(await reacted).toMatchObject({
        messageId: m.id,
        userId: b.id,
        emoji: '🔥',
        added: true,
      });
      const deleted = next(sb, 'message.deleted');
      await ok(sa, 'message.delete', { messageId: m.id });
      const tomb = await deleted;
      expect(tomb.deletedAt).not.toBeNull();
      expect(tomb.content).toBeUndefined();
      const notMine = await call(sb, 'message.edit', { messageId: m.id, content: 'x' });
      expect(notMine.ok).toBe(false);
    });

    it('validates payloads: every failure is an ack with a code; commands without an ack still work', async () => {
      const a = await newUser(t);
      const room = await roomWith(a);
      const s = await open(a.accessToken);
      const bad = await call(s, 'message.send', { roomId: 'nope', clientMsgId: '', content: '' });
      expect(bad).toMatchObject({ ok: false, error: { code: 'VALIDATION_FAILED' } });
      const extra = await call(s, 'message.send', {
        roomId: room.id,
        clientMsgId: 'x',
        content: 'hi',
        authorId: a.id,
      } as never);
      expect(extra).toMatchObject({ ok: false, error: { code: 'VALIDATION_FAILED' } });
      const weird = await call(s, 'message.send', 'just a string' as never);
      expect(weird).toMatchObject({ ok: false, error: { code: 'VALIDATION_FAILED' } });
      const created = next(s, 'message.created');
      s.emit('message.send', {
        roomId: room.id,
        clientMsgId: randomUUID(),
        content: 'no ack please',
      });
      expect((await created).content).toBe('no ack please');
    });
  });

  describe('recovery', () => {
    it('a client offline for 250 messages with edits and deletes gets all of them after `since`, in order, once, paged', async () => {
      const [a, b] = [await newUser(t), await newUser(t)];
      const room = await roomWith(a, b);
      const sb = await open(b.accessToken);
      const first = await ok(sb, 'room.join', { roomId: room.id });
      const since = first.cursor;
      sb.close();
      const ids: number[] = [];
      for (let i = 0; i < 250; i++) ids.push((await send(t, a, room.id, `offline ${i}`)).id);
      for (const id of ids.slice(0, 10))
        await t
          .http()
          .patch(api(`/messages/${id}`))
          .set(a.auth)
          .send({ content: 'edited' })
          .expect(200);
      for (const id of ids.slice(10, 15))
        await t
          .http()
          .delete(api(`/messages/${id}`))
          .set(a.auth)
          .expect(204);
      const sb2 = await open(b.accessToken);
      const got: MessageDto[] = [];
      let cursor = since;
      let pages = 0;
      for (;;) {
        const page = await ok(sb2, 'room.join', { roomId: room.id, since: cursor });
        got.push(...page.messages);
        cursor = page.cursor;
        pages++;
        if (!page.hasMore) break;
      }
      expect(pages).toBeGreaterThan(1);
      const versions = got.map((m) => m.version);
      expect(versions).toEqual([...versions].sort((x, y) => x - y));
      const byId = new Map(got.map((m) => [m.id, m]));
      expect(got.length).toBe(byId.size); // each message once, at its latest version
      expect([...byId.keys()].sort((x, y) => x - y)).toEqual(ids);
      expect(ids.slice(0, 10).map((id) => byId.get(id)!.content)).toEqual(Array(10).fill('edited'));
      expect(ids.slice(10, 15).every((id) => byId.get(id)!.deletedAt)).toBe(true);
      expect(byId.get(ids[249])!.content).toBe('offline 249');
    });

    it('room.join without since returns the latest page, members and online list; history.fetch pages back', async () => {
      const [a, b] = [await newUser(t), await newUser(t)];
      const room = await roomWith(a, b);
      for (let i = 0; i < 60; i++) await send(t, a, room.id, `m${i}`);
      const sa = await open(a.accessToken);
      const j = await ok(sa, 'room.join', { roomId: room.id });
      expect(j.messages).toHaveLength(50);
      expect(j.messages[49].content).toBe('m59');
      expect(j.hasMore).toBe(true);
      expect(j.members.map((m) => m.userId).sort()).toEqual([admin.id, a.id, b.id].sort());
      expect(j.online).toEqual([a.id]);
      const older = await ok(sa, 'history.fetch', {
        roomId: room.id,
        before: j.messages[0].id,
        limit: 20,
      });
      expect(older.items.map((m) => m.content)).toContain('m0');
    });
  });

  describe('access', () => {
    it('a non-member cannot join a private room, and no events leak to it', async () => {
      const [a, mallory] = [await newUser(t), await newUser(t)];
      const room = await newRoom(t, admin, { visibility: 'private' });
      await t
        .http()
        .post(api(`/rooms/${room.id}/members`))
        .set(admin.auth)
        .send({ userId: a.id })
        .expect(201);
      const sm = await open(mallory.accessToken);
      const seen = record(sm, 'message.created', 'typing', 'message.updated');
      const res = await call(sm, 'room.join', { roomId: room.id });
      expect(res).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
      expect(
        await call(sm, 'message.send', { roomId: room.id, clientMsgId: 'm', content: 'hi' }),
      ).toMatchObject({ ok: false });
      expect(await call(sm, 'typing.start', { roomId: room.id })).toMatchObject({ ok: false });
      expect(await call(sm, 'history.fetch', { roomId: room.id })).toMatchObject({
        ok: false,
        error: { code: 'NOT_FOUND' },
      });
      const sa = await open(a.accessToken);
      await ok(sa, 'message.send', {
        roomId: room.id,
        clientMsgId: randomUUID(),
        content: 'secret',
      });
      await ok(sa, 'typing.start', { roomId: room.id });
      await sleep(200);
      expect(seen.events).toEqual([]);
    });

    it('a removed member stops receiving at once', async () => {
      const [a, b] = [await newUser(t), await newUser(t)];
      const room = await roomWith(a, b);
      const sb = await open(b.accessToken);
      const seen = record(sb, 'message.created');
      const left = next(sb, 'member.left');
      await t
        .http()
        .delete(api(`/rooms/${room.id}/members/${b.id}`))
        .set(admin.auth)
        .expect(204);
      expect(await left).toMatchObject({ roomId: room.id, userId: b.id, reason: 'removed' });
      await send(t, a, room.id, 'after removal');
      await sleep(200);
      expect(seen.of('message.created').map((m) => m.content)).not.toContain('after removal');
    });

    it('a room deleted over REST: members get room.deleted and further sends fail', async () => {
      const [a, bystander] = [await newUser(t), await newUser(t)];
      const room = await roomWith(a);
      const sa = await open(a.accessToken);
      const deleted = next(sa, 'room.deleted');
      // A public room is in everyone's list, so non-members are told too; a private one is not.
      const sBystander = await open(bystander.accessToken);
      const listed = next(sBystander, 'room.deleted', (e) => e.roomId === room.id);
      const hidden = await newRoom(t, admin, { visibility: 'private' });
      const leaks = record(sBystander, 'room.deleted');
      await t
        .http()
        .delete(api(`/rooms/${hidden.id}`))
        .set(admin.auth)
        .expect(204);
      await t
        .http()
        .delete(api(`/rooms/${room.id}`))
        .set(admin.auth)
        .expect(204);
      expect(await deleted).toEqual({ roomId: room.id });
      expect(await listed).toEqual({ roomId: room.id });
      expect(leaks.of('room.deleted').map((e) => e.roomId)).not.toContain(hidden.id);
      expect(
        await call(sa, 'message.send', {
          roomId: room.id,
          clientMsgId: randomUUID(),
          content: 'x',
        }),
      ).toMatchObject({
        ok: false,
        error: { code: 'NOT_FOUND' },
      });
    });

    it('joining a public room over the socket makes you a member and delivers live', async () => {
      const [a, b] = [await newUser(t), await newUser(t)];
      const room = await roomWith(a);
      const sb = await open(b.accessToken);
      await ok(sb, 'room.join', { roomId: room.id });
      const got = next(sb, 'message.created', (m) => m.content === 'welcome');
      await send(t, a, room.id, 'welcome');
      await got;
    });

    it('ids in upper case name the same room: a join so written delivers live, over REST too', async () => {
      const [a, b, c] = [await newUser(t), await newUser(t), await newUser(t)];
      const room = await roomWith(a);
      const [sb, sc] = [await open(b.accessToken), await open(c.accessToken)];
      const joined = await ok(sb, 'room.join', { roomId: room.id.toUpperCase() });
      expect(joined.room.id).toBe(room.id);
      await t
        .http()
        .post(api(`/rooms/${room.id.toUpperCase()}/join`))
        .set(c.auth)
        .expect(200);
      await ok(sc, 'room.join', { roomId: room.id });
      const [toB, toC] = [sb, sc].map((s) =>
        next(s, 'message.created', (m) => m.content === 'hello all'),
      );
      await send(t, a, room.id.toUpperCase(), 'hello all');
      expect((await toB).roomId).toBe(room.id);
      expect((await toC).roomId).toBe(room.id);
    });
  });

  describe('presence and typing', () => {
    it('two tabs: closing one keeps the user online; closing both sends offline', async () => {
      const [a, b] = [await newUser(t), await newUser(t)];
      await roomWith(a, b);
      const sb = await open(b.accessToken);
      const online = next(sb, 'presence.changed', (p) => p.userId === a.id && p.online);
      const tab1 = await open(a.accessToken);
      await online;
      const tab2 = await open(a.accessToken);
      const changes = record(sb, 'presence.changed');
      tab1.close();
      await sleep(300);
      expect(changes.of('presence.changed').filter((p) => p.userId === a.id && !p.online)).toEqual(
        [],
      );
      const offline = next(sb, 'presence.changed', (p) => p.userId === a.id && !p.online);
      tab2.close();
      await offline;
    });

    it('typing is relayed to others, throttled, and expires by itself', async () => {
      const [a, b] = [await newUser(t), await newUser(t)];
      const room = await roomWith(a, b);
      const [sa, sb] = [await open(a.accessToken), await open(b.accessToken)];
      const seen = record(sb, 'typing');
      const mine = record(sa, 'typing');
      await ok(sa, 'typing.start', { roomId: room.id });
      await ok(sa, 'typing.start', { roomId: room.id }); // throttled: no second broadcast
      await next(sb, 'typing', (p) => !p.typing, 3000); // expired by itself (TYPING_TIMEOUT_MS=600)
      expect(seen.of('typing').map((p) => p.typing)).toEqual([true, false]);
      expect(mine.events).toEqual([]);
    });

    it('a stop sent right after a start wins, even while the start is being checked', async () => {
      const [a, b] = [await newUser(t), await newUser(t)];
      const room = await roomWith(a, b);
      const [sa, sb] = [await open(a.accessToken), await open(b.accessToken)];
      const seen = record(sb, 'typing');
      // No await between: the stop arrives while the start asks the access policy.
      const started = call(sa, 'typing.start', { roomId: room.id });
      await ok(sa, 'typing.stop', { roomId: room.id });
      await started;
      await sleep(300); // < TYPING_TIMEOUT_MS (600): a start that won would still show
      const shown = seen.of('typing').map((p) => p.typing);
      expect(shown.at(-1) ?? false).toBe(false);
    });
  });

  describe('limits and robustness', () => {
    it('an oversized packet disconnects only its sender', async () => {
      const [a, b] = [await newUser(t), await newUser(t)];
      const room = await roomWith(a, b);
      const [sa, sb] = [await open(a.accessToken), await open(b.accessToken)];
      const gone = disconnected(sa);
      sa.emit('message.send', { roomId: room.id, clientMsgId: 'big', content: 'x'.repeat(20_000) });
      await gone;
      expect(
        (
          await ok(sb, 'message.send', {
            roomId: room.id,
            clientMsgId: randomUUID(),
            content: 'still here',
          })
        ).content,
      ).toBe('still here');
    });

    it('a flood gets RATE_LIMITED with retryAfterMs', async () => {
      const a = await newUser(t);
      const room = await roomWith(a);
      const s = await open(a.accessToken);
      // RATE_LIMIT_TYPING is 30 here (sends have a high limit: other tests send hundreds).
      const results = await Promise.all(
        Array.from({ length: 40 }, () => call(s, 'typing.start', { roomId: room.id })),
      );
      const limited = results.filter((r) => !r.ok);
      expect(limited.length).toBe(10);
      expect(limited[0]).toMatchObject({
        ok: false,
        error: { code: 'RATE_LIMITED', retryAfterMs: expect.any(Number) },
      });
    });

    it('malformed packets and unknown events leave the server serving others', async () => {
      const [a, b] = [await newUser(t), await newUser(t)];
      const room = await roomWith(a, b);
      const [sa, sb] = [await open(a.accessToken), await open(b.accessToken)];
      (sa.emit as (...args: unknown[]) => void)('no.such.event', { x: 1 }, () => undefined);
      (sa.emit as (...args: unknown[]) => void)('message.send');
      (sa.emit as (...args: unknown[]) => void)('message.send', null, null, 42);
      (sa.emit as (...args: unknown[]) => void)('room.join', [1, 2, 3], () => undefined);
      // a raw, invalid Socket.IO packet on the websocket
      const engine = (sa.io as unknown as { engine: { write: (d: string) => void } }).engine;
      engine.write('42["message.send",{"roomId":');
      await sleep(200);
      expect(
        (
          await ok(sb, 'message.send', {
            roomId: room.id,
            clientMsgId: randomUUID(),
            content: 'alive',
          })
        ).content,
      ).toBe('alive');
    });
  });
});
