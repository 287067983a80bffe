import { randomBytes } from 'node:crypto';
import type { MessageDto, ThreadPageDto } from '../src/messages/dto/message.dto';
import { startApp, type TestApp } from './support/app';
import { SERVER_URL, testEndpoint } from './support/database';
import {
  ADMIN_ENV,
  NO_WRITE_LIMITS,
  join,
  loginAdmin,
  newRoom,
  newUser,
  post,
  type TestRoom,
  type TestUser,
} from './support/factories';
import { call, type ClientSocket, connect, next, ok } from './support/socket';

const api = (path: string) => `/api/v1${path}`;

async function thread(t: TestApp, user: TestUser, id: number, query = ''): Promise<ThreadPageDto> {
  const res = await t
    .http()
    .get(api(`/messages/${id}/thread${query}`))
    .set(user.auth)
    .expect(200);
  return res.body as ThreadPageDto;
}

describe('threads (e2e)', () => {
  let t: TestApp;
  let admin: TestUser;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let eve: TestUser;
  let room: TestRoom;
  const sockets: ClientSocket[] = [];

  beforeAll(async () => {
    t = await startApp({ ...ADMIN_ENV, ...NO_WRITE_LIMITS });
    admin = await loginAdmin(t);
    [alice, bob, carol, eve] = [
      await newUser(t),
      await newUser(t),
      await newUser(t),
      await newUser(t),
    ];
    room = await newRoom(t, admin);
    for (const u of [alice, bob, carol]) await join(t, u, room.id);
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await t.close();
  });

  it('a reply joins its parent’s thread (flat); the root counts replies and the last participants', async () => {
    const root = await post(t, alice, room.id, 'root');
    expect(root).toMatchObject({ threadRootId: null });
    expect(root.replyCount).toBeUndefined();
    const r1 = await post(t, bob, room.id, 'first', root.id);
    expect(r1.threadRootId).toBe(root.id);
    const r2 = await post(t, carol, room.id, 'reply to a reply', r1.id);
    expect(r2).toMatchObject({ threadRootId: root.id, replyToId: r1.id });
    await post(t, bob, room.id, 'again', root.id);

    const page = await thread(t, alice, root.id);
    expect(page.root).toMatchObject({
      id: root.id,
      replyCount: 3,
      lastReplyAt: expect.any(String),
      threadParticipants: [bob.id, carol.id],
    });
    expect(page.items.map((m) => m.content)).toEqual(['first', 'reply to a reply', 'again']);
    expect(page.nextCursor).toBeNull();
    // Any message of the thread answers the whole thread.
    expect((await thread(t, carol, r2.id)).root.id).toBe(root.id);
    // The root's change is a new version: clients catching up see the counters.
    const changes = await t
      .http()
      .get(api(`/rooms/${room.id}/messages/changes?since=${r2.version}`))
      .set(alice.auth)
      .expect(200);
    expect((changes.body.items as MessageDto[]).find((m) => m.id === root.id)?.replyCount).toBe(3);
  });

  it('keeps at most 5 participants, most recent first, each once', async () => {
    const users = [alice, bob, carol, ...(await Promise.all([1, 2, 3].map(() => newUser(t))))];
    for (const u of users.slice(3)) await join(t, u, room.id);
    const root = await post(t, alice, room.id, 'many voices');
    for (const u of users) await post(t, u, room.id, `from ${u.username}`, root.id);
    await post(t, bob, room.id, 'bob again', root.id);
    const { root: after } = await thread(t, alice, root.id);
    expect(after.replyCount).toBe(7);
    expect(after.threadParticipants).toEqual([
      bob.id,
      users[5].id,
      users[4].id,
      users[3].id,
      carol.id,
    ]);
  });

  it('pages replies with a keyset cursor', async () => {
    const root = await post(t, alice, room.id, 'paged');
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) ids.push((await post(t, bob, room.id, `r${i}`, root.id)).id);
    const p1 = await thread(t, alice, root.id, '?limit=2');
    expect(p1.items.map((m) => m.id)).toEqual(ids.slice(0, 2));
    const p2 = await thread(t, alice, root.id, `?limit=2&after=${p1.nextCursor}`);
    expect(p2.items.map((m) => m.id)).toEqual(ids.slice(2, 4));
    const p3 = await thread(t, alice, root.id, `?limit=2&after=${p2.nextCursor}`);
    expect(p3.items.map((m) => m.id)).toEqual(ids.slice(4));
    expect(p3.nextCursor).toBeNull();
    expect([p1.prevCursor, p2.prevCursor, p3.prevCursor]).toEqual([null, ids[2], ids[4]]);
    await t
      .http()
      .get(api(`/messages/${root.id}/thread?limit=0`))
      .set(alice.auth)
      .expect(400);
  });

  it('refuses threads one may not read: 403 outside a public room, 404 for private rooms and unknown ids', async () => {
    const root = await post(t, alice, room.id, 'members only');
    await t
      .http()
      .get(api(`/messages/${root.id}/thread`))
      .set(eve.auth)
      .expect(403);
    const priv = await newRoom(t, admin, { visibility: 'private' });
    const hidden = await post(t, admin, priv.id, 'secret');
    await t
      .http()
      .get(api(`/messages/${hidden.id}/thread`))
      .set(eve.auth)
      .expect(404);
    await t
      .http()
      .put(api(`/messages/${hidden.id}/follow`))
      .set(eve.auth)
      .expect(404);
    await t
      .http()
      .put(api(`/messages/${root.id}/follow`))
      .set(eve.auth)
      .expect(403);
    await t.http().get(api('/messages/999999999/thread')).set(alice.auth).expect(404);
  });

  it('the root’s author, repliers and those mentioned follow; an explicit unfollow survives later replies', async () => {
    const root = await post(t, alice, room.id, 'follow me');
    expect((await thread(t, alice, root.id)).following).toBe(false); // no thread yet
    await post(t, bob, room.id, `cc @${carol.username}`, root.id);
    for (const u of [alice, bob, carol])
      expect([u.username, (await thread(t, u, root.id)).following]).toEqual([u.username, true]);

    const off = await t
      .http()
      .delete(api(`/messages/${root.id}/follow`))
      .set(bob.auth)
      .expect(200);
    expect(off.body).toEqual({ rootId: root.id, following: false });
    await post(t, bob, room.id, 'still here', root.id);
    await post(t, alice, room.id, `@${bob.username} ping`, root.id);
    expect((await thread(t, bob, root.id)).following).toBe(false);

    // Following again works (through a reply's id too).
    const reply = (await thread(t, bob, root.id)).items[0];
    const on = await t
      .http()
      .put(api(`/messages/${reply.id}/follow`))
      .set(bob.auth)
      .expect(200);
    expect(on.body).toEqual({ rootId: root.id, following: true });
    expect((await thread(t, bob, root.id)).following).toBe(true);
  });

  it('thread.updated reaches the room’s sockets after each reply', async () => {
    const s = await connect(t, carol.accessToken);
    sockets.push(s);
    await ok(s, 'room.join', { roomId: room.id });
    const root = await post(t, alice, room.id, 'live thread');
    const updated = next(s, 'thread.updated', (e) => e.rootId === root.id);
    const sb = await connect(t, bob.accessToken);
    sockets.push(sb);
    const reply = await ok(sb, 'message.send', {
      roomId: room.id,
      clientMsgId: randomBytes(8).toString('hex'),
      content: 'over the socket',
      replyToId: root.id,
    });
    expect(reply.threadRootId).toBe(root.id);
    expect(await updated).toEqual({
      roomId: room.id,
      rootId: root.id,
      version: expect.any(Number),
      replyCount: 1,
      lastReplyAt: expect.any(String),
      participants: [bob.id],
    });
  });

  it('pages back from the latest replies (latest, then before), oldest first in each page', async () => {
    const root = await post(t, alice, room.id, 'paged from the end');
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) ids.push((await post(t, bob, room.id, `e${i}`, root.id)).id);
    const last = await thread(t, alice, root.id, '?latest=true&limit=2');
    expect(last.items.map((m) => m.id)).toEqual(ids.slice(3));
    expect(last).toMatchObject({ nextCursor: null, prevCursor: ids[3] });
    const middle = await thread(t, alice, root.id, `?before=${last.prevCursor}&limit=2`);
    expect(middle.items.map((m) => m.id)).toEqual(ids.slice(1, 3));
    expect(middle).toMatchObject({ nextCursor: ids[2], prevCursor: ids[1] });
    const first = await thread(t, alice, root.id, `?before=${middle.prevCursor}&limit=2`);
    expect(first.items.map((m) => m.id)).toEqual(ids.slice(0, 1));
    expect(first).toMatchObject({ nextCursor: ids[0], prevCursor: null });
    // Back and forth meet: what follows the first page is the middle one.
    const again = await thread(t, alice, root.id, `?after=${first.nextCursor}&limit=2`);
    expect(again.items.map((m) => m.id)).toEqual(ids.slice(1, 3));
    // Empty pages at either edge still point back at the replies.
    const beforeAll = await thread(t, alice, root.id, `?before=${ids[0]}`);
    expect(beforeAll).toMatchObject({ items: [], prevCursor: null, nextCursor: ids[0] - 1 });
    const afterAll = await thread(t, alice, root.id, `?after=${ids[4]}`);
    expect(afterAll).toMatchObject({ items: [], nextCursor: null, prevCursor: ids[4] + 1 });
    // `latest=false` is the default (the first replies); one cursor at a time; booleans only.
    const start = await thread(t, alice, root.id, '?latest=false&limit=2');
    expect(start.items.map((m) => m.id)).toEqual(ids.slice(0, 2));
    for (const q of [
      `?latest=true&before=${ids[2]}`,
      `?after=${ids[0]}&before=${ids[4]}`,
      '?latest=yes',
    ])
      await t
        .http()
        .get(api(`/messages/${root.id}/thread${q}`))
        .set(alice.auth)
        .expect(400);
    // The same over the socket.
    const s = await connect(t, alice.accessToken);
    sockets.push(s);
    const end = await ok(s, 'thread.fetch', { messageId: ids[0], latest: true, limit: 2 });
    expect(end.items.map((m) => m.id)).toEqual(ids.slice(3));
    const back = await ok(s, 'thread.fetch', {
      messageId: root.id,
      before: end.prevCursor!,
      limit: 2,
    });
    expect(back.items.map((m) => m.id)).toEqual(ids.slice(1, 3));
    const both = await call(s, 'thread.fetch', { messageId: root.id, latest: true, after: ids[1] });
    expect(both).toMatchObject({ ok: false, error: { code: 'VALIDATION_FAILED' } });
    // A null cursor (a client passing `prevCursor` once it is null) is no cursor: refused,
    // not read as "the latest page" again (a client paging back would loop on it).
    for (const cursor of [{ before: null }, { after: null }, { latest: null }]) {
      const nulled = await call(s, 'thread.fetch', { messageId: root.id, ...cursor } as never);
      expect(nulled).toMatchObject({ ok: false, error: { code: 'VALIDATION_FAILED' } });
    }
    const history = await call(s, 'history.fetch', { roomId: room.id, before: null } as never);
    expect(history).toMatchObject({ ok: false, error: { code: 'VALIDATION_FAILED' } });
  });

  it('thread.fetch answers the thread over the socket, and refuses outsiders', async () => {
    const root = await post(t, alice, room.id, 'socket thread');
    const replies = [];
    for (let i = 0; i < 3; i++) replies.push(await post(t, bob, room.id, `s${i}`, root.id));
    const s = await connect(t, alice.accessToken);
    sockets.push(s);
    const page = await ok(s, 'thread.fetch', { messageId: replies[1].id, limit: 2 });
    expect(page.root).toMatchObject({ id: root.id, replyCount: 3 });
    expect(page.items.map((m) => m.id)).toEqual([replies[0].id, replies[1].id]);
    expect(page.following).toBe(true);
    const rest = await ok(s, 'thread.fetch', { messageId: root.id, after: page.nextCursor! });
    expect(rest.items.map((m) => m.id)).toEqual([replies[2].id]);
    expect(rest.nextCursor).toBeNull();
    const se = await connect(t, eve.accessToken);
    sockets.push(se);
    const refused = await call(se, 'thread.fetch', { messageId: root.id });
    expect(refused).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
  });

  it('a retried reply (same clientMsgId) is counted once', async () => {
    const root = await post(t, alice, room.id, 'idempotent');
    const body = {
      clientMsgId: randomBytes(8).toString('hex'),
      content: 'once',
      replyToId: root.id,
    };
    await t
      .http()
      .post(api(`/rooms/${room.id}/messages`))
      .set(bob.auth)
      .send(body)
      .expect(201);
    await t
      .http()
      .post(api(`/rooms/${room.id}/messages`))
      .set(bob.auth)
      .send(body)
      .expect(200);
    expect((await thread(t, alice, root.id)).root.replyCount).toBe(1);
  });
});

/**
 * Concurrent replies to one root from several users, as separate statements racing on the
 * root's row (one send per batch, many batches at once, two instances on one database). On
 * server PostgreSQL this is real concurrency; on PGlite it still checks the arithmetic.
 */
describe('thread counters under concurrent replies', () => {
  let a: TestApp;
  let b: TestApp | undefined;
  beforeAll(async () => {
    const endpoint = await testEndpoint();
    const env = {
      ...ADMIN_ENV,
      ...NO_WRITE_LIMITS,
      SEND_BATCH_MAX: '1',
      SEND_BATCH_CONCURRENCY: '8',
      DATABASE_POOL_SIZE: '12',
      USER_MAX_INFLIGHT: '64',
      WS_MAX_INFLIGHT_PER_SOCKET: '64',
    };
    a = await startApp(env, endpoint);
    if (SERVER_URL) b = await startApp(env, endpoint);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  it('N parallel replies from several users: reply_count == N, participants distinct', async () => {
    const admin = await loginAdmin(a);
    const users = await Promise.all([1, 2, 3, 4, 5, 6].map(() => newUser(a)));
    const r = await newRoom(a, admin);
    for (const u of users) await join(a, u, r.id);
    const root = await post(a, users[0], r.id, 'race');
    const perUser = 20;
    const apps = b ? [a, b] : [a];
    const sent = await Promise.all(
      users.flatMap((u, i) =>
        Array.from({ length: perUser }, (_, k) =>
          post(apps[(i + k) % apps.length], u, r.id, `r${k}`, root.id),
        ),
      ),
    );
    expect(sent.every((m) => m.threadRootId === root.id)).toBe(true);
    const page = await thread(a, users[0], root.id, '?limit=200');
    expect(page.items).toHaveLength(users.length * perUser);
    expect(page.root.replyCount).toBe(users.length * perUser);
    const participants = page.root.threadParticipants!;
    expect(participants).toHaveLength(5);
    expect(new Set(participants).size).toBe(5);
    // The most recent replier comes first.
    expect(participants[0]).toBe(page.items[page.items.length - 1].author!.id);
  });
});
