import fc from 'fast-check';
import { DataSource } from 'typeorm';
import { Message, MessageEdit, Reaction } from '../src/messages/message.entity';
import { MessageStore } from '../src/messages/message-store';
import { startApp, TestApp } from './support/app';
import { call, connect } from './support/socket';
import {
  ADMIN_ENV,
  NO_WRITE_LIMITS,
  join,
  loginAdmin,
  newRoom,
  newUser,
  send,
  TestRoom,
  TestUser,
} from './support/factories';

interface Msg {
  id: number;
  version: number;
  content?: string;
  deletedAt: string | null;
  editedAt: string | null;
  role: string;
  reactions: { emoji: string; count: number; me?: boolean; userIds: string[] }[];
}

describe('messages (e2e)', () => {
  let t: TestApp;
  let admin: TestUser;
  let alice: TestUser;
  let bob: TestUser;
  let room: TestRoom;
  const api = (path: string) => `/api/v1${path}`;

  beforeAll(async () => {
    // One test sends 20 requests at once from one user (above the default USER_MAX_INFLIGHT).
    t = await startApp({
      ...ADMIN_ENV,
      ...NO_WRITE_LIMITS,
      MESSAGE_MAX_LENGTH: '50',
      USER_MAX_INFLIGHT: '32',
      MESSAGE_MAX_EDITS: '5',
      MESSAGE_MAX_REACTIONS: '10',
    });
    admin = await loginAdmin(t);
    [alice, bob] = [await newUser(t), await newUser(t)];
    room = await newRoom(t, admin);
    await join(t, alice, room.id);
    await join(t, bob, room.id);
  });
  afterAll(() => t.close());

  describe('send', () => {
    it('stores and returns the message in the shared shape', async () => {
      const res = await t
        .http()
        .post(api(`/rooms/${room.id}/messages`))
        .set(alice.auth)
        .send({ clientMsgId: 'hello-1', content: '  hello  ' })
        .expect(201);
      expect(res.body).toEqual({
        id: expect.any(Number),
        version: expect.any(Number),
        roomId: room.id,
        author: { id: alice.id, kind: 'user', username: alice.username, displayName: null },
        role: 'user',
        content: 'hello',
        replyToId: null,
        clientMsgId: 'hello-1',
        reactions: [],
        createdAt: expect.any(String),
        editedAt: null,
        deletedAt: null,
        mentions: [],
        threadRootId: null,
        attachments: [],
      });
    });

    it.each([
      ['empty content', { content: '   ' }, 'content'],
      ['content over MESSAGE_MAX_LENGTH', { content: 'x'.repeat(51) }, 'content'],
      ['missing clientMsgId', { clientMsgId: undefined }, 'clientMsgId'],
      ['bad clientMsgId', { clientMsgId: 'has space' }, 'clientMsgId'],
      ['non-numeric replyToId', { replyToId: 'abc' }, 'replyToId'],
      ['unknown field', { authorId: 'x' }, 'authorId'],
    ])('rejects %s with 400', async (_, patch, field) => {
      const res = await t
        .http()
        .post(api(`/rooms/${room.id}/messages`))
        .set(alice.auth)
        .send({ clientMsgId: 'v-' + field, content: 'ok', ...patch })
        .expect(400);
      expect(res.body.code).toBe('VALIDATION_FAILED');
      expect(Object.keys(res.body.details)).toContain(field);
    });

    it('rejects a reply to a message of another room', async () => {
      const other = await newRoom(t, admin);
      const elsewhere = await send(t, admin, other.id, 'elsewhere');
      const res = await t
        .http()
        .post(api(`/rooms/${room.id}/messages`))
        .set(alice.auth)
        .send({ clientMsgId: 'reply-x', content: 'hi', replyToId: elsewhere.id })
        .expect(400);
      expect(Object.keys(res.body.details)).toEqual(['replyToId']);
    });

    it('is idempotent: 20 concurrent sends with one clientMsgId → one row, one id, one 201', async () => {
      const results = await Promise.all(
        Array.from({ length: 20 }, () =>
          t
            .http()
            .post(api(`/rooms/${room.id}/messages`))
            .set(bob.auth)
            .send({ clientMsgId: 'same-id', content: 'once' }),
        ),
      );
      expect(results.map((r) => r.status).sort((a, b) => a - b)).toEqual([
        ...Array(19).fill(200),
        201,
      ]);
      expect(new Set(results.map((r) => (r.body as Msg).id)).size).toBe(1);
      const hist = await t
        .http()
        .get(api(`/rooms/${room.id}/messages?limit=200`))
        .set(bob.auth)
        .expect(200);
      expect((hist.body.items as Msg[]).filter((m) => m.content === 'once')).toHaveLength(1);
    });

    it('the same clientMsgId in another room is a conflict, not a silent duplicate', async () => {
      const other = await newRoom(t, admin);
      await join(t, bob, other.id);
      await send(t, bob, room.id, 'first', 'cross-room');
      const res = await t
        .http()
        .post(api(`/rooms/${other.id}/messages`))
        .set(bob.auth)
        .send({ clientMsgId: 'cross-room', content: 'x' })
        .expect(409);
      expect(res.body.code).toBe('CONFLICT');
    });

    it('one clientMsgId sent to two rooms in one batch answers each send with its own room only', async () => {
      // The first send is refused by the batch's membership check (bob is not in `elsewhere`);
      // the second is stored. The stored row must not answer the first (whose text and mentions
      // room B never screened), nor carry the first's mentions.
      const elsewhere = await newRoom(t, admin);
      const store = t.app.get(MessageStore);
      const author = { id: bob.id, username: bob.username, displayName: null };
      const [refused, stored] = await Promise.all([
        store.insertUserMessage({
          roomId: elsewhere.id,
          author,
          content: 'never screened by room B',
          clientMsgId: 'two-rooms',
          mentions: { stored: [], userIds: [alice.id] },
        }),
        store.insertUserMessage({
          roomId: room.id.toUpperCase(),
          author,
          content: 'room B text',
          clientMsgId: 'two-rooms',
        }),
      ]);
      expect(refused).toBeNull();
      expect(stored).toMatchObject({ roomId: room.id, content: 'room B text' });
      const mentioned = await t.app
        .get(DataSource)
        .query(`SELECT user_id FROM message_mentions WHERE message_id = $1`, [stored!.id]);
      expect(mentioned).toEqual([]);
    });
  });

  describe('history', () => {
    let r: TestRoom;
    let ids: number[];
    beforeAll(async () => {
      r = await newRoom(t, admin);
      ids = [];
      for (let i = 0; i < 25; i++) ids.push((await send(t, admin, r.id, `m${i}`)).id);
    });
    const page = async (q: string) =>
      (
        await t
          .http()
          .get(api(`/rooms/${r.id}/messages?${q}`))
          .set(admin.auth)
          .expect(200)
      ).body as {
        items: Msg[];
        hasMore: boolean;
        hasMoreBefore: boolean;
        hasMoreAfter: boolean;
      };

    it('latest page is chronological with hasMore', async () => {
      const p = await page('limit=10');
      expect(p.items.map((m) => m.id)).toEqual(ids.slice(15));
      expect(p).toMatchObject({ hasMore: true, hasMoreBefore: true, hasMoreAfter: false });
    });
    it('before / after / around', async () => {
      expect((await page(`before=${ids[10]}&limit=5`)).items.map((m) => m.id)).toEqual(
        ids.slice(5, 10),
      );
      const after = await page(`after=${ids[20]}&limit=10`);
      expect(after.items.map((m) => m.id)).toEqual(ids.slice(21));
      expect(after.hasMore).toBe(false);
      expect((await page(`around=${ids[12]}&limit=6`)).items.map((m) => m.id)).toEqual(
        ids.slice(9, 15),
      );
    });
    it('rejects bad cursors and combinations with 400', async () => {
      await t
        .http()
        .get(api(`/rooms/${r.id}/messages?before=abc`))
        .set(admin.auth)
        .expect(400);
      await t
        .http()
        .get(api(`/rooms/${r.id}/messages?limit=201`))
        .set(admin.auth)
        .expect(400);
      await t
        .http()
        .get(api(`/rooms/${r.id}/messages?before=1&after=2`))
        .set(admin.auth)
        .expect(400);
    });
  });

  describe('edit, delete, edits, reactions', () => {
    it('author edits (history kept); others and system messages cannot be edited', async () => {
      const m = await send(t, alice, room.id, 'draft');
      const edited = await t
        .http()
        .patch(api(`/messages/${m.id}`))
        .set(alice.auth)
        .send({ content: 'final' })
        .expect(200);
      expect(edited.body).toMatchObject({ content: 'final', editedAt: expect.any(String) });
      expect(edited.body.version).toBeGreaterThan(m.version);
      await t
        .http()
        .patch(api(`/messages/${m.id}`))
        .set(bob.auth)
        .send({ content: 'hijack' })
        .expect(403);
      const edits = await t
        .http()
        .get(api(`/messages/${m.id}/edits`))
        .set(bob.auth)
        .expect(200);
      expect(edits.body).toEqual({
        items: [{ content: 'draft', editedAt: expect.any(String) }],
        nextCursor: null,
      });
      const hist = await t
        .http()
        .get(api(`/rooms/${room.id}/messages`))
        .set(admin.auth)
        .expect(200);
      const system = (hist.body.items as Msg[]).find((x) => x.role === 'system')!;
      await t
        .http()
        .patch(api(`/messages/${system.id}`))
        .set(admin.auth)
        .send({ content: 'x' })
        .expect(403);
      await t
        .http()
        .patch(api(`/messages/${m.id}`))
        .set(alice.auth)
        .send({ content: '' })
        .expect(400);
    });

    it('author or admin deletes; a tombstone stays in history without content', async () => {
      const m1 = await send(t, alice, room.id, 'secret one');
      const m2 = await send(t, alice, room.id, 'secret two');
      await t
        .http()
        .delete(api(`/messages/${m1.id}`))
        .set(bob.auth)
        .expect(403);
      await t
        .http()
        .delete(api(`/messages/${m1.id}`))
        .set(alice.auth)
        .expect(204);
      await t
        .http()
        .delete(api(`/messages/${m2.id}`))
        .set(admin.auth)
        .expect(204);
      await t
        .http()
        .delete(api(`/messages/${m2.id}`))
        .set(admin.auth)
        .expect(404);
      const hist = await t
        .http()
        .get(api(`/rooms/${room.id}/messages?after=${m1.id - 1}`))
        .set(bob.auth)
        .expect(200);
      const tomb = (hist.body.items as Msg[]).find((x) => x.id === m1.id)!;
      expect(tomb.deletedAt).not.toBeNull();
      expect(tomb).not.toHaveProperty('content');
      expect(JSON.stringify(hist.body)).not.toContain('secret');
      await t
        .http()
        .patch(api(`/messages/${m1.id}`))
        .set(alice.auth)
        .send({ content: 'revive' })
        .expect(404);
      await t
        .http()
        .get(api(`/messages/${m1.id}/edits`))
        .set(alice.auth)
        .expect(404);
    });

    it('edit history is bounded (MESSAGE_MAX_EDITS) and paged by cursor', async () => {
      const m = await send(t, alice, room.id, 'v0');
      for (let i = 1; i <= 5; i++) {
        await t
          .http()
          .patch(api(`/messages/${m.id}`))
          .set(alice.auth)
          .send({ content: `v${i}` })
          .expect(200);
      }
      const refused = await t
        .http()
        .patch(api(`/messages/${m.id}`))
        .set(alice.auth)
        .send({ content: 'v6' })
        .expect(409);
      expect(refused.body).toMatchObject({
        code: 'CONFLICT',
        message: 'Edit limit reached: a message can be edited at most 5 times',
      });
      // The socket says the same.
      const s = await connect(t, alice.accessToken);
      try {
        expect(await call(s, 'message.edit', { messageId: m.id, content: 'v6' })).toMatchObject({
          ok: false,
          error: { code: 'CONFLICT', message: expect.stringMatching(/edit limit reached/i) },
        });
      } finally {
        s.close();
      }
      const current = await t
        .http()
        .get(api(`/rooms/${room.id}/messages?around=${m.id}&limit=1`))
        .set(alice.auth)
        .expect(200);
      expect((current.body.items as Msg[])[0]).toMatchObject({ id: m.id, content: 'v5' });

      // Pages of 2, oldest first, following nextCursor until null.
      const pages: { items: { content: string }[]; nextCursor: string | null }[] = [];
      let cursor: string | null = null;
      do {
        const res: { body: unknown } = await t
          .http()
          .get(api(`/messages/${m.id}/edits?limit=2${cursor ? `&cursor=${cursor}` : ''}`))
          .set(bob.auth)
          .expect(200);
        const page = res.body as (typeof pages)[number];
        pages.push(page);
        cursor = page.nextCursor;
      } while (cursor && pages.length < 10);
      expect(pages.map((p) => p.items.map((e) => e.content))).toEqual([
        ['v0', 'v1'],
        ['v2', 'v3'],
        ['v4'],
      ]);
      expect(pages.map((p) => p.nextCursor)).toEqual([
        expect.any(String),
        expect.any(String),
        null,
      ]);
      // The default page holds all five; bad page parameters are a 400.
      const all = await t
        .http()
        .get(api(`/messages/${m.id}/edits`))
        .set(bob.auth)
        .expect(200);
      expect(all.body.items).toHaveLength(5);
      expect(all.body.nextCursor).toBeNull();
      for (const bad of ['limit=0', 'limit=101', 'cursor=abc', 'cursor=-1', 'cursor=1e400']) {
        const res = await t
          .http()
          .get(api(`/messages/${m.id}/edits?${bad}`))
          .set(bob.auth)
          .expect(400);
        expect(res.body.code).toBe('VALIDATION_FAILED');
      }
    });

    it('a reaction on a deleted message is NOT_FOUND, and the tombstone has none', async () => {
      const m = await send(t, alice, room.id, 'short-lived');
      const thumbs = encodeURIComponent('👍');
      await t
        .http()
        .put(api(`/messages/${m.id}/reactions/${thumbs}`))
        .set(bob.auth)
        .expect(200);
      await t
        .http()
        .delete(api(`/messages/${m.id}`))
        .set(alice.auth)
        .expect(204);
      for (const req of [
        t.http().put(api(`/messages/${m.id}/reactions/${thumbs}`)),
        t.http().delete(api(`/messages/${m.id}/reactions/${thumbs}`)),
      ]) {
        const res = await req.set(bob.auth).expect(404);
        expect(res.body.code).toBe('NOT_FOUND');
      }
      const s = await connect(t, bob.accessToken);
      try {
        for (const name of ['reaction.add', 'reaction.remove'] as const) {
          expect(await call(s, name, { messageId: m.id, emoji: '👍' })).toMatchObject({
            ok: false,
            error: { code: 'NOT_FOUND' },
          });
        }
      } finally {
        s.close();
      }
      const [{ n }] = await t.app
        .get(DataSource)
        .query<{ n: number }[]>(`SELECT count(*)::int AS n FROM reactions WHERE message_id = $1`, [
          m.id,
        ]);
      expect(n).toBe(0);
    });

    it('reactions: one per user per emoji, counts and my flag, emoji validated', async () => {
      const m = await send(t, alice, room.id, 'react to me');
      const thumbs = encodeURIComponent('👍');
      await t
        .http()
        .put(api(`/messages/${m.id}/reactions/${thumbs}`))
        .set(alice.auth)
        .expect(200);
      await t
        .http()
        .put(api(`/messages/${m.id}/reactions/${thumbs}`))
        .set(alice.auth)
        .expect(200);
      const res = await t
        .http()
        .put(api(`/messages/${m.id}/reactions/${thumbs}`))
        .set(bob.auth)
        .expect(200);
      expect(res.body.reactions).toEqual([
        { emoji: '👍', count: 2, userIds: [alice.id, bob.id], me: true },
      ]);
      await t
        .http()
        .put(api(`/messages/${m.id}/reactions/${encodeURIComponent(':tada:')}`))
        .set(bob.auth)
        .expect(200);
      const removed = await t
        .http()
        .delete(api(`/messages/${m.id}/reactions/${thumbs}`))
        .set(bob.auth)
        .expect(200);
      expect(removed.body.reactions).toEqual([
        { emoji: '👍', count: 1, userIds: [alice.id], me: false },
        { emoji: ':tada:', count: 1, userIds: [bob.id], me: true },
      ]);
      for (const bad of ['abc', '<script>', '12', encodeURIComponent('👍'.repeat(40))]) {
        await t
          .http()
          .put(api(`/messages/${m.id}/reactions/${bad}`))
          .set(bob.auth)
          .expect(400);
      }
    });

    it('at most MESSAGE_MAX_REACTIONS different emoji per message, on REST and socket, also when added at once', async () => {
      const m = await send(t, alice, room.id, 'many reactions');
      const put = (u: TestUser, emoji: string) =>
        t
          .http()
          .put(api(`/messages/${m.id}/reactions/${encodeURIComponent(emoji)}`))
          .set(u.auth);
      for (let i = 0; i < 8; i++) await put(alice, `:e${i}:`).expect(200);
      // Two new emoji at once for the last two places, and two more: exactly two pass.
      const racing = await Promise.all(
        [':r0:', ':r1:', ':r2:', ':r3:'].map((e) => put(e.endsWith('0:') ? alice : bob, e)),
      );
      expect(racing.map((r) => r.status).sort()).toEqual([200, 200, 409, 409]);
      const refused = await put(bob, ':one_more:').expect(409);
      expect(refused.body.code).toBe('CONFLICT');
      expect(refused.body.message).toMatch(/at most 10 different emoji/);
      const s = await connect(t, bob.accessToken);
      try {
        expect(
          await call(s, 'reaction.add', { messageId: m.id, emoji: ':one_more:' }),
        ).toMatchObject({ ok: false, error: { code: 'CONFLICT' } });
        // An emoji the message has already is always welcome.
        const more = await call(s, 'reaction.add', { messageId: m.id, emoji: ':e0:' });
        expect(more).toMatchObject({ ok: true });
      } finally {
        s.close();
      }
      const [{ n }] = await t.app
        .get(DataSource)
        .query<{ n: number }[]>(
          `SELECT count(DISTINCT emoji)::int AS n FROM reactions WHERE message_id = $1`,
          [m.id],
        );
      expect(n).toBe(10);
      // A place freed by the last removal of an emoji is free again.
      await t
        .http()
        .delete(api(`/messages/${m.id}/reactions/${encodeURIComponent(':e7:')}`))
        .set(alice.auth)
        .expect(200);
      await put(bob, ':one_more:').expect(200);
    });

    // Nothing visible: joiners, variation selectors, a lone keycap mark, a digit with a selector.
    const INVISIBLE = [
      '\u200d',
      '\ufe0f',
      '\u200d\ufe0f',
      '\u200d\u200d\u200d',
      '\u20e3',
      '1\ufe0f',
    ];
    // Real emoji built from the same parts stay valid.
    const VISIBLE = ['👍', '❤️', '👍🏽', '👨‍👩‍👧', '🏳️‍🌈', '🇫🇷', '#️⃣', '1⃣', ':ok_hand:'];

    it('a reaction of only invisible characters (U+200D, U+FE0F) is VALIDATION_FAILED on REST and socket', async () => {
      const m = await send(t, alice, room.id, 'invisible reactions');
      const s = await connect(t, bob.accessToken);
      try {
        for (const emoji of INVISIBLE) {
          const rest = await t
            .http()
            .put(api(`/messages/${m.id}/reactions/${encodeURIComponent(emoji)}`))
            .set(bob.auth);
          expect({ emoji, status: rest.status, code: rest.body.code }).toEqual({
            emoji,
            status: 400,
            code: 'VALIDATION_FAILED',
          });
          const ack = await call(s, 'reaction.add', { messageId: m.id, emoji });
          expect({ emoji, ack }).toMatchObject({
            emoji,
            ack: { ok: false, error: { code: 'VALIDATION_FAILED' } },
          });
        }
        for (const emoji of VISIBLE) {
          const rest = await t
            .http()
            .put(api(`/messages/${m.id}/reactions/${encodeURIComponent(emoji)}`))
            .set(bob.auth);
          expect({ emoji, status: rest.status }).toEqual({ emoji, status: 200 });
          const ack = await call(s, 'reaction.remove', { messageId: m.id, emoji });
          expect({ emoji, ok: ack.ok }).toEqual({ emoji, ok: true });
        }
      } finally {
        s.close();
      }
      const [{ n }] = await t.app
        .get(DataSource)
        .query<{ n: number }[]>(`SELECT count(*)::int AS n FROM reactions WHERE message_id = $1`, [
          m.id,
        ]);
      expect(n).toBe(0);
    });
  });

  describe('changes cursor', () => {
    it('returns creates, edits, deletes and reactions after a version, in order, paged', async () => {
      const r = await newRoom(t, admin);
      const a = await send(t, admin, r.id, 'a');
      const since = a.version;
      const b = await send(t, admin, r.id, 'b');
      await t
        .http()
        .patch(api(`/messages/${a.id}`))
        .set(admin.auth)
        .send({ content: 'a2' })
        .expect(200);
      await t
        .http()
        .put(api(`/messages/${b.id}/reactions/${encodeURIComponent('🎉')}`))
        .set(admin.auth)
        .expect(200);
      const c = await send(t, admin, r.id, 'c');
      await t
        .http()
        .delete(api(`/messages/${c.id}`))
        .set(admin.auth)
        .expect(204);
      const p1 = await t
        .http()
        .get(api(`/rooms/${r.id}/messages/changes?since=${since}&limit=2`))
        .set(admin.auth)
        .expect(200);
      expect(p1.body.hasMore).toBe(true);
      const p2 = await t
        .http()
        .get(api(`/rooms/${r.id}/messages/changes?since=${p1.body.cursor}&limit=10`))
        .set(admin.auth)
        .expect(200);
      expect(p2.body.hasMore).toBe(false);
      const all = [...p1.body.items, ...p2.body.items] as Msg[];
      // each message appears once, at its latest version, in version order
      expect(all.map((m) => m.id)).toEqual([a.id, b.id, c.id]);
      expect(all.map((m) => m.version)).toEqual(
        [...all.map((m) => m.version)].sort((x, y) => x - y),
      );
      expect(all[0].content).toBe('a2');
      expect(all[1].reactions[0].emoji).toBe('🎉');
      expect(all[2].deletedAt).not.toBeNull();
      await t
        .http()
        .get(api(`/rooms/${r.id}/messages/changes`))
        .set(admin.auth)
        .expect(400);
    });
  });

  describe('search', () => {
    it('finds words in my rooms and nothing from rooms I cannot see', async () => {
      const secret = await newRoom(t, admin, { visibility: 'private' });
      await send(t, admin, secret.id, 'the zebra protocol is classified');
      await send(t, alice, room.id, 'Zebras are striped; the zebra protocol is public');
      const res = await t
        .http()
        .get(api(`/rooms/${room.id}/messages/search?q=zebra`))
        .set(bob.auth)
        .expect(200);
      expect(res.body.items).toHaveLength(1);
      expect(res.body.items[0].content).toContain('public');
      await t
        .http()
        .get(api(`/rooms/${secret.id}/messages/search?q=zebra`))
        .set(bob.auth)
        .expect(404);
      await t
        .http()
        .get(api(`/rooms/${room.id}/messages/search?q=`))
        .set(bob.auth)
        .expect(400);
    });
  });

  describe('IDOR: outsiders of private and direct rooms get nothing by any route', () => {
    it('every message route answers 404 with no data', async () => {
      const [x, y, mallory] = [await newUser(t), await newUser(t), await newUser(t)];
      const dm = (
        await t
          .http()
          .post(api(`/direct/${y.id}`))
          .set(x.auth)
          .expect(200)
      ).body as { id: string };
      const priv = await newRoom(t, admin, { visibility: 'private' });
      for (const roomId of [dm.id, priv.id]) {
        const owner = roomId === dm.id ? x : admin;
        const m = await send(t, owner, roomId, 'private words');
        const routes: [string, string, object?][] = [
          ['get', `/rooms/${roomId}`],
          ['get', `/rooms/${roomId}/messages`],
          ['get', `/rooms/${roomId}/messages/changes?since=0`],
          ['get', `/rooms/${roomId}/messages/search?q=private`],
          ['get', `/rooms/${roomId}/members`],
          ['post', `/rooms/${roomId}/messages`, { clientMsgId: 'm1', content: 'hi' }],
          ['post', `/rooms/${roomId}/join`],
          ['put', `/rooms/${roomId}/read`, { messageId: m.id }],
          ['patch', `/messages/${m.id}`, { content: 'x' }],
          ['delete', `/messages/${m.id}`],
          ['get', `/messages/${m.id}/edits`],
          ['put', `/messages/${m.id}/reactions/${encodeURIComponent('👍')}`],
          ['delete', `/messages/${m.id}/reactions/${encodeURIComponent('👍')}`],
        ];
        for (const [method, path, body] of routes) {
          type Verb = (p: string) => ReturnType<ReturnType<TestApp['http']>['get']>;
          const agent = t.http() as unknown as Record<string, Verb>;
          const req = agent[method](api(path)).set(mallory.auth);
          const res = await (body ? req.send(body) : req);
          expect([method, path, res.status]).toEqual([method, path, 404]);
          expect(JSON.stringify(res.body)).not.toContain('private words');
        }
      }
    });
  });

  describe('indexes', () => {
    it('history and changes queries use the (room_id, id) and (room_id, version) indexes', async () => {
      // 500 rooms × 60 messages, interleaved as real traffic would be
      const ds = t.app.get(DataSource);
      const rooms = (
        await ds.query<{ id: string }[]>(
          `INSERT INTO rooms (name, kind, visibility) SELECT 'bulk-' || g, 'group', 'public' FROM generate_series(1, 500) g RETURNING id`,
        )
      ).map((x) => x.id);
      const r = { id: rooms[7] };
      await ds.query(
        `INSERT INTO messages (room_id, role, content)
         SELECT ($1::uuid[])[1 + g % 500], 'system', 'bulk ' || g FROM generate_series(1, 30000) g`,
        [rooms],
      );

      await ds.query('ANALYZE messages');
      const plan = async (sql: string) =>
        (await ds.query<{ 'QUERY PLAN': string }[]>(`EXPLAIN ${sql}`, [r.id]))
          .map((row) => row['QUERY PLAN'])
          .join('\n');
      expect(
        await plan(
          `SELECT id FROM messages WHERE room_id = $1 AND id < 10000 ORDER BY id DESC LIMIT 51`,
        ),
      ).toMatch(/messages_room_id_idx/);
      expect(
        await plan(
          `SELECT id FROM messages WHERE room_id = $1 AND version > 10000 ORDER BY version LIMIT 101`,
        ),
      ).toMatch(/messages_room_version_idx/);
      expect(
        await plan(
          `SELECT id FROM messages WHERE room_id = $1 AND search @@ websearch_to_tsquery('simple', 'bulk') LIMIT 20`,
        ),
      ).toMatch(/messages_search_idx|messages_room/);
    });

    it('the search index keeps a GIN pending list, merged off the send path (SearchIndexCleaner)', async () => {
      const [row] = await t.app
        .get(DataSource)
        .query<{ reloptions: string[] | null }[]>(
          `SELECT reloptions FROM pg_class WHERE relname = 'messages_search_idx'`,
        );
      expect(row.reloptions).toContain('fastupdate=on');
    });
  });

  describe('entities', () => {
    it('map every column of their tables (finish_reason and the generated search included)', async () => {
      const db = t.app.get(DataSource);
      for (const entity of [Message, MessageEdit, Reaction]) {
        const meta = db.getMetadata(entity);
        const columns = await db.query<{ column_name: string }[]>(
          `SELECT column_name FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name = $1`,
          [meta.tableName],
        );
        expect({
          table: meta.tableName,
          columns: columns.map((c) => c.column_name).sort(),
        }).toEqual({
          table: meta.tableName,
          columns: meta.columns.map((c) => c.databaseName).sort(),
        });
      }
    });
  });

  describe('property: paging and changes reproduce the room', () => {
    type Op =
      | { kind: 'send'; room: number }
      | { kind: 'edit'; pick: number }
      | { kind: 'delete'; pick: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 5, arbitrary: fc.record({ kind: fc.constant('send' as const), room: fc.nat(1) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('edit' as const), pick: fc.nat() }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), pick: fc.nat() }) },
    );

    it('before-paging then after-paging yields every message once, in order; changes from 0 match the final state', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(op, { minLength: 1, maxLength: 30 }),
          fc.integer({ min: 1, max: 7 }),
          async (ops, pageSize) => {
            const rooms = [await newRoom(t, admin), await newRoom(t, admin)];
            const live = new Map<number, { room: number; content?: string; deleted: boolean }>();
            let n = 0;
            for (const o of ops) {
              const ids = [...live.keys()].filter((id) => !live.get(id)!.deleted);
              if (o.kind === 'send') {
                const m = await send(t, admin, rooms[o.room].id, `msg ${n++}`);
                live.set(m.id, { room: o.room, content: m.content, deleted: false });
              } else if (ids.length) {
                const id = ids[o.pick % ids.length];
                if (o.kind === 'edit') {
                  await t
                    .http()
                    .patch(api(`/messages/${id}`))
                    .set(admin.auth)
                    .send({ content: `edited ${n++}` })
                    .expect(200);
                  live.get(id)!.content = `edited ${n - 1}`;
                } else {
                  await t
                    .http()
                    .delete(api(`/messages/${id}`))
                    .set(admin.auth)
                    .expect(204);
                  live.get(id)!.deleted = true;
                }
              }
            }
            for (const [ri, r] of rooms.entries()) {
              const expected = [...live.entries()]
                .filter(([, v]) => v.room === ri)
                .map(([id]) => id);
              // page backwards from the newest
              const back: number[] = [];
              let before: number | undefined;
              for (;;) {
                const q = `limit=${pageSize}${before ? `&before=${before}` : ''}`;
                const p = (
                  await t
                    .http()
                    .get(api(`/rooms/${r.id}/messages?${q}`))
                    .set(admin.auth)
                    .expect(200)
                ).body as { items: Msg[]; hasMore: boolean };
                back.unshift(...p.items.filter((m) => m.role === 'user').map((m) => m.id));
                if (!p.hasMore) break;
                before = p.items[0].id;
              }
              expect(back).toEqual(expected);
              // then forwards from the start
              const fwd: number[] = [];
              let after = 0;
              for (;;) {
                const p = (
                  await t
                    .http()
                    .get(api(`/rooms/${r.id}/messages?limit=${pageSize}&after=${after}`))
                    .set(admin.auth)
                    .expect(200)
                ).body as { items: Msg[]; hasMore: boolean };
                fwd.push(...p.items.filter((m) => m.role === 'user').map((m) => m.id));
                if (!p.items.length) break;
                after = p.items[p.items.length - 1].id;
                if (!p.hasMore) break;
              }
              expect(fwd).toEqual(expected);
              // replaying the changes feed from 0 reproduces the final state
              const state = new Map<number, { content?: string; deleted: boolean }>();
              let since = 0;
              for (;;) {
                const p = (
                  await t
                    .http()
                    .get(api(`/rooms/${r.id}/messages/changes?since=${since}&limit=${pageSize}`))
                    .set(admin.auth)
                    .expect(200)
                ).body as { items: Msg[]; hasMore: boolean; cursor: number };
                for (const m of p.items)
                  if (m.role === 'user')
                    state.set(m.id, { content: m.content, deleted: m.deletedAt !== null });
                since = p.cursor;
                if (!p.hasMore) break;
              }
              const want = new Map(
                expected.map((id) => [
                  id,
                  live.get(id)!.deleted
                    ? { content: undefined, deleted: true }
                    : { content: live.get(id)!.content, deleted: false },
                ]),
              );
              expect(state).toEqual(want);
            }
          },
        ),
        { numRuns: 12 },
      );
    }, 120_000);
  });
});
