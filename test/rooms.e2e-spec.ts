import { jest } from '@jest/globals';
import { RoomStore } from '../src/rooms/room.store';
import { startApp, TestApp } from './support/app';
import { ADMIN_ENV, join, loginAdmin, newRoom, newUser, send, TestUser } from './support/factories';
import { call, connect, next } from './support/socket';

describe('rooms (e2e)', () => {
  let t: TestApp;
  let admin: TestUser;
  beforeAll(async () => {
    t = await startApp(ADMIN_ENV);
    admin = await loginAdmin(t);
  });
  afterAll(() => t.close());

  const api = (path: string) => `/api/v1${path}`;

  it('admins create, update and delete rooms; users cannot', async () => {
    const user = await newUser(t);
    await t
      .http()
      .post(api('/rooms'))
      .set(user.auth)
      .send({ name: 'nope', visibility: 'public' })
      .expect(403);
    const room = await newRoom(t, admin, { name: 'Lobby-1', description: 'hi' });
    expect(room).toMatchObject({
      name: 'Lobby-1',
      kind: 'group',
      visibility: 'public',
      joined: true,
      myRole: 'owner',
      memberCount: 1,
    });
    const dup = await t
      .http()
      .post(api('/rooms'))
      .set(admin.auth)
      .send({ name: 'lobby-1', visibility: 'public' })
      .expect(409);
    expect(dup.body.code).toBe('CONFLICT');
    await t
      .http()
      .patch(api(`/rooms/${room.id}`))
      .set(user.auth)
      .send({ name: 'x' })
      .expect(403);
    const upd = await t
      .http()
      .patch(api(`/rooms/${room.id}`))
      .set(admin.auth)
      .send({ theme: 'cheerful' })
      .expect(200);
    expect(upd.body.theme).toBe('cheerful');
    await t
      .http()
      .delete(api(`/rooms/${room.id}`))
      .set(user.auth)
      .expect(403);
    await t
      .http()
      .delete(api(`/rooms/${room.id}`))
      .set(admin.auth)
      .expect(204);
    await t
      .http()
      .get(api(`/rooms/${room.id}`))
      .set(admin.auth)
      .expect(404);
    const list = await t.http().get(api('/rooms')).set(user.auth).expect(200);
    expect(list.body.items.map((r: { id: string }) => r.id)).not.toContain(room.id);
  });

  it('validates room input and ids', async () => {
    const bad = await t
      .http()
      .post(api('/rooms'))
      .set(admin.auth)
      .send({ name: '', visibility: 'secret', kind: 'direct' })
      .expect(400);
    expect(Object.keys(bad.body.details)).toEqual(
      expect.arrayContaining(['name', 'visibility', 'kind']),
    );
    await t.http().get(api('/rooms/123')).set(admin.auth).expect(400);
    await t.http().get(api('/rooms?limit=0')).set(admin.auth).expect(400);
    // null for an optional text field is refused (it was a 500 NOT NULL violation; the fuzzer found it)
    for (const field of ['description', 'theme']) {
      const res = await t
        .http()
        .post(api('/rooms'))
        .set(admin.auth)
        .send({ name: `null-${field}`, visibility: 'public', [field]: null })
        .expect(400);
      expect(Object.keys(res.body.details)).toEqual([field]);
    }
    const room = await t
      .http()
      .post(api('/rooms'))
      .set(admin.auth)
      .send({ name: 'null-patch', visibility: 'public' })
      .expect(201);
    await t
      .http()
      .patch(api(`/rooms/${room.body.id}`))
      .set(admin.auth)
      .send({ theme: null })
      .expect(400);
  });

  it('a room created without visibility is public; a PATCH without it changes nothing', async () => {
    const created = await t
      .http()
      .post(api('/rooms'))
      .set(admin.auth)
      .send({ name: `default-${Date.now()}`, description: 'no visibility given' })
      .expect(201);
    expect(created.body.visibility).toBe('public');
    const user = await newUser(t);
    await t
      .http()
      .post(api(`/rooms/${created.body.id}/join`))
      .set(user.auth)
      .expect(200);
    await t
      .http()
      .post(api('/rooms'))
      .set(admin.auth)
      .send({ name: `null-visibility-${Date.now()}`, visibility: null })
      .expect(400);
    const secret = await newRoom(t, admin, { visibility: 'private' });
    const patched = await t
      .http()
      .patch(api(`/rooms/${secret.id}`))
      .set(admin.auth)
      .send({ theme: 'still private' })
      .expect(200);
    expect(patched.body.visibility).toBe('private');
  });

  it('join/leave public rooms writes system messages once; members listed', async () => {
    const room = await newRoom(t, admin);
    const alice = await newUser(t);
    await join(t, alice, room.id);
    await join(t, alice, room.id); // idempotent
    const members = await t
      .http()
      .get(api(`/rooms/${room.id}/members`))
      .set(alice.auth)
      .expect(200);
    expect(members.body.items.map((m: { username: string }) => m.username).sort()).toEqual(
      [admin.username, alice.username].sort(),
    );
    await t
      .http()
      .post(api(`/rooms/${room.id}/leave`))
      .set(alice.auth)
      .expect(204);
    const hist = await t
      .http()
      .get(api(`/rooms/${room.id}/messages`))
      .set(admin.auth)
      .expect(200);
    expect(
      hist.body.items.map((m: { role: string; content: string }) => `${m.role}:${m.content}`),
    ).toEqual([`system:${alice.username} joined`, `system:${alice.username} left`]);
  });

  it('public rooms: visible to all, history only after joining', async () => {
    const room = await newRoom(t, admin);
    const bob = await newUser(t);
    await t
      .http()
      .get(api(`/rooms/${room.id}`))
      .set(bob.auth)
      .expect(200);
    const res = await t
      .http()
      .get(api(`/rooms/${room.id}/messages`))
      .set(bob.auth)
      .expect(403);
    expect(res.body.code).toBe('FORBIDDEN');
    await t
      .http()
      .post(api(`/rooms/${room.id}/messages`))
      .set(bob.auth)
      .send({ clientMsgId: 'x1', content: 'hi' })
      .expect(403);
  });

  it('the owner cannot leave their room (REST and socket); the room keeps its owner', async () => {
    const room = await newRoom(t, admin, { visibility: 'private' });
    const res = await t
      .http()
      .post(api(`/rooms/${room.id}/leave`))
      .set(admin.auth)
      .expect(403);
    expect(res.body).toMatchObject({ code: 'FORBIDDEN', message: expect.stringMatching(/owner/) });
    const s = await connect(t, admin.accessToken);
    try {
      expect(await call(s, 'room.leave', { roomId: room.id })).toMatchObject({
        ok: false,
        error: { code: 'FORBIDDEN' },
      });
    } finally {
      s.close();
    }
    const members = await t
      .http()
      .get(api(`/rooms/${room.id}/members`))
      .set(admin.auth)
      .expect(200);
    expect(members.body.items).toEqual([
      expect.objectContaining({ username: admin.username, role: 'owner' }),
    ]);
  });

  it("the room list shows a public room's latest message to its members only (not to outsiders, nor once banned)", async () => {
    const room = await newRoom(t, admin);
    const [member, outsider] = [await newUser(t), await newUser(t)];
    await join(t, member, room.id);
    const secret = await send(t, admin, room.id, 'members-only news');
    const listed = async (u: TestUser) =>
      (
        (await t.http().get(api('/rooms?limit=200')).set(u.auth).expect(200)).body.items as {
          id: string;
          joined: boolean;
          lastMessage: { id: number; content?: string } | null;
        }[]
      ).find((r) => r.id === room.id)!;
    expect((await listed(member)).lastMessage).toMatchObject({ id: secret.id });
    expect(await listed(outsider)).toMatchObject({ joined: false, lastMessage: null });
    await t
      .http()
      .post(api(`/rooms/${room.id}/bans`))
      .set(admin.auth)
      .send({ userId: member.id })
      .expect(201);
    await send(t, admin, room.id, 'after the ban');
    expect(await listed(member)).toMatchObject({ joined: false, lastMessage: null });
  });

  it('private rooms: invisible (404) to non-members, joined by invitation only', async () => {
    const room = await newRoom(t, admin, { visibility: 'private' });
    const [carol, dave] = [await newUser(t), await newUser(t)];
    await t
      .http()
      .get(api(`/rooms/${room.id}`))
      .set(carol.auth)
      .expect(404);
    await t
      .http()
      .post(api(`/rooms/${room.id}/join`))
      .set(carol.auth)
      .expect(404);
    const list = await t.http().get(api('/rooms')).set(carol.auth).expect(200);
    expect(list.body.items.map((r: { id: string }) => r.id)).not.toContain(room.id);
    // only admins and owners invite
    await t
      .http()
      .post(api(`/rooms/${room.id}/members`))
      .set(carol.auth)
      .send({ userId: dave.id })
      .expect(404);
    await t
      .http()
      .post(api(`/rooms/${room.id}/members`))
      .set(admin.auth)
      .send({ userId: carol.id })
      .expect(201);
    await t
      .http()
      .post(api(`/rooms/${room.id}/members`))
      .set(carol.auth)
      .send({ userId: dave.id })
      .expect(403);
    await t
      .http()
      .get(api(`/rooms/${room.id}/messages`))
      .set(carol.auth)
      .expect(200);
    // admins remove members; then the room is gone for them again
    await t
      .http()
      .delete(api(`/rooms/${room.id}/members/${carol.id}`))
      .set(carol.auth)
      .expect(403);
    await t
      .http()
      .delete(api(`/rooms/${room.id}/members/${carol.id}`))
      .set(admin.auth)
      .expect(204);
    await t
      .http()
      .get(api(`/rooms/${room.id}/messages`))
      .set(carol.auth)
      .expect(404);
  });

  it('direct rooms: one per pair, even under concurrent calls; private to the pair', async () => {
    const [a, b, c] = [await newUser(t), await newUser(t), await newUser(t)];
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        t
          .http()
          .post(api(`/direct/${i % 2 ? a.id : b.id}`))
          .set(i % 2 ? b.auth : a.auth),
      ),
    );
    const ids = new Set(
      results.map((r) => (r.status === 200 ? (r.body as { id: string }).id : `status ${r.status}`)),
    );
    expect(ids.size).toBe(1);
    const [roomId] = [...ids];
    const room = await t
      .http()
      .get(api(`/rooms/${roomId}`))
      .set(a.auth)
      .expect(200);
    expect(room.body).toMatchObject({ kind: 'direct', visibility: 'private', memberCount: 2 });
    await t
      .http()
      .get(api(`/rooms/${roomId}`))
      .set(c.auth)
      .expect(404);
    await t
      .http()
      .post(api(`/direct/${a.id}`))
      .set(a.auth)
      .expect(400);
    await t
      .http()
      .post(api(`/direct/00000000-0000-4000-8000-000000000000`))
      .set(a.auth)
      .expect(404);
    await t
      .http()
      .post(api(`/rooms/${roomId}/leave`))
      .set(a.auth)
      .expect(400);
  });

  it('a direct room deleted while POST /direct finds it is created anew (not 500)', async () => {
    const [a, b] = [await newUser(t), await newUser(t)];
    const first = (
      await t
        .http()
        .post(api(`/direct/${b.id}`))
        .set(a.auth)
        .expect(200)
    ).body as {
      id: string;
    };
    // The second call's insert meets the existing room; an admin deletes it before the call
    // reads which room that is.
    const store = t.app.get(RoomStore);
    const lookup = store.directRoomId.bind(store);
    const spy = jest.spyOn(store, 'directRoomId').mockImplementationOnce(async (key) => {
      await t
        .http()
        .delete(api(`/rooms/${first.id}`))
        .set(admin.auth)
        .expect(204);
      return lookup(key);
    });
    try {
      const again = await t
        .http()
        .post(api(`/direct/${a.id}`))
        .set(b.auth)
        .expect(200);
      expect(again.body).toMatchObject({ kind: 'direct', memberCount: 2 });
      expect(again.body.id).not.toBe(first.id);
      expect(spy).toHaveBeenCalledTimes(1);
    } finally {
      spy.mockRestore();
    }
  });

  it('GET /rooms: unread counts, last message, read marker never moves back, paging', async () => {
    const room = await newRoom(t, admin);
    const [u1, u2] = [await newUser(t), await newUser(t)];
    await join(t, u1, room.id);
    await join(t, u2, room.id);
    const m1 = await send(t, u2, room.id, 'one');
    await send(t, u2, room.id, 'two');
    const m3 = await send(t, u2, room.id, 'three');
    const find = async (u: TestUser) =>
      (
        (await t.http().get(api('/rooms?limit=200')).set(u.auth).expect(200)).body.items as {
          id: string;
          unreadCount: number;
          lastMessage: { id: number };
        }[]
      ).find((r) => r.id === room.id)!;
    const before = await find(u1);
    // u2's three messages; the "u2 joined" notice after u1 joined is not a message to read
    expect(before.unreadCount).toBe(3);
    expect(before.lastMessage.id).toBe(m3.id);
    expect((await find(u2)).unreadCount).toBe(0); // own messages are not unread
    // Notices never count: a third member comes and goes, a message is deleted.
    const u3 = await newUser(t);
    await join(t, u3, room.id);
    await t
      .http()
      .post(api(`/rooms/${room.id}/leave`))
      .set(u3.auth)
      .expect(204);
    const m4 = await send(t, u2, room.id, 'four, soon deleted');
    expect((await find(u1)).unreadCount).toBe(4);
    await t
      .http()
      .delete(api(`/messages/${m4.id}`))
      .set(u2.auth)
      .expect(204);
    expect((await find(u1)).unreadCount).toBe(3);
    expect((await find(u2)).unreadCount).toBe(0);
    const r1 = await t
      .http()
      .put(api(`/rooms/${room.id}/read`))
      .set(u1.auth)
      .send({ messageId: m3.id })
      .expect(200);
    expect(r1.body).toMatchObject({ lastReadMessageId: m3.id, unreadCount: 0 });
    const r2 = await t
      .http()
      .put(api(`/rooms/${room.id}/read`))
      .set(u1.auth)
      .send({ messageId: m1.id })
      .expect(200);
    expect(r2.body.lastReadMessageId).toBe(m3.id);
    await t
      .http()
      .put(api(`/rooms/${room.id}/read`))
      .set(u1.auth)
      .send({ messageId: 999999999 })
      .expect(404);
    // paging through rooms with the cursor yields each room once
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await t
        .http()
        .get(api(`/rooms?limit=2${cursor ? `&cursor=${cursor}` : ''}`))
        .set(u1.auth)
        .expect(200);
      seen.push(...(res.body.items as { id: string }[]).map((r) => r.id));
      cursor = res.body.nextCursor as string | null;
    } while (cursor);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toContain(room.id);
  });

  it("room.updated is the room as every member sees it: never the changer's joined/myRole", async () => {
    const member = await newUser(t);
    const room = await newRoom(t, admin, { name: `Upd-${member.username}` });
    await join(t, member, room.id);
    const s = await connect(t, member.accessToken);
    try {
      const updated = next(s, 'room.updated', (r) => r.id === room.id);
      const res = await t
        .http()
        .patch(api(`/rooms/${room.id}`))
        .set(admin.auth)
        .send({ description: 'changed by the owner' })
        .expect(200);
      // The changer's own answer keeps their view ...
      expect(res.body).toMatchObject({ joined: true, myRole: 'owner' });
      // ... the event every member gets carries none.
      const event = await updated;
      expect(event).toMatchObject({ id: room.id, description: 'changed by the owner' });
      expect(event).not.toHaveProperty('joined');
      expect(event).not.toHaveProperty('myRole');
      const mine = await t
        .http()
        .get(api(`/rooms/${room.id}`))
        .set(member.auth)
        .expect(200);
      expect(mine.body).toMatchObject({ joined: true, myRole: 'member' });
      expect(Object.keys(event).sort()).toEqual(
        Object.keys(mine.body)
          .filter((k) => k !== 'joined' && k !== 'myRole')
          .sort(),
      );
    } finally {
      s.disconnect();
    }
  });
});
