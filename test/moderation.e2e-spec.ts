import { randomBytes } from 'node:crypto';
import { jest } from '@jest/globals';
import { DataSource } from 'typeorm';
import { RoomStore } from '../src/rooms/room.store';
import { startApp, type TestApp } from './support/app';
import { SERVER_URL, waitUntilBlocking } from './support/database';
import {
  ADMIN_ENV,
  join,
  loginAdmin,
  newRoom,
  newUser,
  NO_WRITE_LIMITS,
  send,
  type TestRoom,
  type TestUser,
} from './support/factories';
import { call, type ClientSocket, connect, next, ok, record, sleep } from './support/socket';

const api = (path: string) => `/api/v1${path}`;
const cmid = () => randomBytes(8).toString('hex');
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

describe('moderation (e2e)', () => {
  let t: TestApp;
  let admin: TestUser;
  /** Owns the rooms of these tests without being an admin (promoted to create them, then not). */
  let owner: TestUser;
  const sockets: ClientSocket[] = [];

  beforeAll(async () => {
    t = await startApp({ ...ADMIN_ENV, ...NO_WRITE_LIMITS });
    admin = await loginAdmin(t);
    owner = await newUser(t);
  });
  afterEach(() => {
    for (const s of sockets.splice(0)) s.close();
  });
  afterAll(() => t.close());

  const http = () => t.http();
  const open = async (user: TestUser, roomId?: string) => {
    const s = await connect(t, user.accessToken);
    sockets.push(s);
    if (roomId) await ok(s, 'room.join', { roomId });
    return s;
  };
  const setRole = async (user: TestUser, role: 'admin' | 'user') => {
    await http()
      .patch(api(`/users/${user.id}`))
      .set(admin.auth)
      .send({ role })
      .expect(200);
  };
  /** A public (or private) group room owned by `owner`, who is not an admin. */
  const ownedRoom = async (visibility: 'public' | 'private' = 'public'): Promise<TestRoom> => {
    await setRole(owner, 'admin');
    try {
      return await newRoom(t, owner, { visibility });
    } finally {
      await setRole(owner, 'user');
    }
  };
  const member = async (room: TestRoom) => {
    const u = await newUser(t);
    await join(t, u, room.id);
    return u;
  };
  const mute = (by: TestUser, roomId: string, body: Record<string, unknown>) =>
    http()
      .post(api(`/rooms/${roomId}/mutes`))
      .set(by.auth)
      .send(body);
  const ban = (by: TestUser, roomId: string, body: Record<string, unknown>) =>
    http()
      .post(api(`/rooms/${roomId}/bans`))
      .set(by.auth)
      .send(body);
  const appoint = (by: TestUser, roomId: string, userId: string, role: string) =>
    http()
      .put(api(`/rooms/${roomId}/members/${userId}/role`))
      .set(by.auth)
      .send({ role });
  const restSend = (user: TestUser, roomId: string, content = 'hi') =>
    http()
      .post(api(`/rooms/${roomId}/messages`))
      .set(user.auth)
      .send({ clientMsgId: cmid(), content });
  const members = async (roomId: string) => {
    const res = await http()
      .get(api(`/rooms/${roomId}/members`))
      .set(admin.auth)
      .expect(200);
    return res.body.items as {
      userId: string;
      role: string;
      muted: boolean;
      mutedUntil: string | null;
    }[];
  };
  /** The audit log as written (the audit query API is another change's). */
  const audit = (action: string, targetId: string) =>
    t.app
      .get(DataSource)
      .query<{ actor_id: string; room_id: string; reason: string; details: unknown }[]>(
        `SELECT actor_id, room_id, reason, details FROM audit_log
          WHERE action = $1 AND target_id = $2 ORDER BY id`,
        [action, targetId],
      );
  const until = async (cond: () => Promise<boolean>, ms: number, what: string) => {
    const t0 = Date.now();
    while (Date.now() - t0 < ms) {
      if (await cond()) return;
      await sleep(100);
    }
    throw new Error(`timed out waiting for ${what}`);
  };

  it('only admins and the room owner set moderators; the owner keeps their role', async () => {
    const room = await ownedRoom();
    const [alice, bob] = [await member(room), await member(room)];
    const watcher = await open(bob, room.id);

    // A member, and a moderator, cannot appoint.
    expect((await appoint(bob, room.id, alice.id, 'moderator').expect(403)).body.code).toBe(
      'FORBIDDEN',
    );
    const changed = next(watcher, 'member.role.changed', (e) => e.userId === alice.id);
    const res = await appoint(owner, room.id, alice.id, 'moderator').expect(200);
    expect(res.body).toMatchObject({ userId: alice.id, role: 'moderator', muted: false });
    expect(await changed).toEqual({
      roomId: room.id,
      userId: alice.id,
      role: 'moderator',
      by: owner.id,
    });
    await appoint(alice, room.id, bob.id, 'moderator').expect(403);
    // An admin may, too; nobody changes the owner's role; non-members are 404.
    await appoint(admin, room.id, bob.id, 'moderator').expect(200);
    await appoint(admin, room.id, bob.id, 'member').expect(200);
    await appoint(admin, room.id, owner.id, 'member').expect(403);
    await appoint(owner, room.id, owner.id, 'moderator').expect(403);
    await appoint(owner, room.id, (await newUser(t)).id, 'moderator').expect(404);
    await appoint(owner, room.id, bob.id, 'owner').expect(400);

    const list = await members(room.id);
    expect(list.find((m) => m.userId === alice.id)?.role).toBe('moderator');
    expect(list.find((m) => m.userId === owner.id)?.role).toBe('owner');
    const { body: seen } = await http()
      .get(api(`/rooms/${room.id}`))
      .set(alice.auth)
      .expect(200);
    expect(seen.myRole).toBe('moderator');

    const rows = await audit('member.role', alice.id);
    expect(rows).toEqual([
      expect.objectContaining({
        actor_id: owner.id,
        room_id: room.id,
        details: { from: 'member', to: 'moderator' },
      }),
    ]);
    expect(await audit('member.role', bob.id)).toHaveLength(2);
  });

  it('a moderator of room A has no power in room B; moderators cannot sanction their peers', async () => {
    const [a, b] = [await ownedRoom(), await ownedRoom()];
    const mod = await member(a);
    await join(t, mod, b.id);
    await appoint(owner, a.id, mod.id, 'moderator').expect(200);
    const victim = await member(a);
    await join(t, victim, b.id);

    await mute(mod, b.id, { userId: victim.id }).expect(403);
    await ban(mod, b.id, { userId: victim.id }).expect(403);
    await http()
      .get(api(`/rooms/${b.id}/bans`))
      .set(mod.auth)
      .expect(403);
    await http()
      .delete(api(`/rooms/${b.id}/mutes/${victim.id}`))
      .set(mod.auth)
      .expect(403);
    await appoint(mod, b.id, victim.id, 'moderator').expect(403);
    await mute(mod, a.id, { userId: victim.id }).expect(201);
    await http()
      .get(api(`/rooms/${a.id}/bans`))
      .set(mod.auth)
      .expect(200);

    // Nobody mutes or bans themselves, the owner or an admin; a moderator no other moderator.
    const peer = await member(a);
    await appoint(owner, a.id, peer.id, 'moderator').expect(200);
    await join(t, admin, a.id);
    for (const target of [mod, owner, admin, peer]) {
      const res = await mute(mod, a.id, { userId: target.id }).expect(403);
      expect(res.body.code).toBe('FORBIDDEN');
      await ban(mod, a.id, { userId: target.id }).expect(403);
    }
    await mute(owner, a.id, { userId: owner.id }).expect(403);
    await mute(admin, a.id, { userId: owner.id }).expect(403);
    // The owner and admins may sanction a moderator.
    await mute(owner, a.id, { userId: peer.id }).expect(201);
    await http()
      .delete(api(`/rooms/${a.id}/mutes/${peer.id}`))
      .set(admin.auth)
      .expect(204);
    // A plain member moderates nothing.
    await mute(victim, a.id, { userId: peer.id }).expect(403);
    // Unknown users, and users who are not members (a mute is on the membership).
    await mute(owner, a.id, { userId: '00000000-0000-4000-8000-000000000000' }).expect(404);
    await mute(owner, a.id, { userId: (await newUser(t)).id }).expect(404); // not a member
  });

  it('a muted member reads but cannot send (REST, socket), edit or react; unmute restores', async () => {
    const room = await ownedRoom();
    const bob = await member(room);
    const earlier = await send(t, bob, room.id, 'before the mute');
    const bs = await open(bob, room.id);
    const witness = await member(room);
    const ws = await open(witness, room.id);

    const muted = next(bs, 'member.muted');
    const seen = next(ws, 'member.muted');
    const res = await mute(owner, room.id, {
      userId: bob.id,
      durationSec: 3600,
      reason: 'spam',
    }).expect(201);
    expect(res.body).toMatchObject({ userId: bob.id, muted: true });
    expect(res.body.mutedUntil).toMatch(ISO);
    const end = Date.parse(res.body.mutedUntil);
    expect(Math.abs(end - Date.now() - 3600_000)).toBeLessThan(60_000);
    expect(await muted).toEqual({
      roomId: room.id,
      userId: bob.id,
      until: res.body.mutedUntil,
      reason: 'spam',
      by: owner.id,
    });
    // The rest of the room is told of the mute, not of its reason.
    expect(await seen).toEqual({
      roomId: room.id,
      userId: bob.id,
      until: res.body.mutedUntil,
      by: owner.id,
    });
    const details = { reason: 'spam', until: res.body.mutedUntil };

    const rest = await restSend(bob, room.id).expect(403);
    expect(rest.body).toMatchObject({ code: 'FORBIDDEN', details });
    expect(rest.body.message).toContain('spam');
    expect(rest.body.message).toContain(res.body.mutedUntil);
    const sock = await call(bs, 'message.send', {
      roomId: room.id,
      clientMsgId: cmid(),
      content: 'x',
    });
    expect(sock).toMatchObject({ ok: false, error: { code: 'FORBIDDEN', details } });
    const edit = await http()
      .patch(api(`/messages/${earlier.id}`))
      .set(bob.auth)
      .send({ content: 'edited' })
      .expect(403);
    expect(edit.body.details).toEqual(details);
    expect(await call(bs, 'message.edit', { messageId: earlier.id, content: 'e' })).toMatchObject({
      ok: false,
      error: { code: 'FORBIDDEN', details },
    });
    await http()
      .put(api(`/messages/${earlier.id}/reactions/👍`))
      .set(bob.auth)
      .expect(403);
    expect(await call(bs, 'reaction.add', { messageId: earlier.id, emoji: '👍' })).toMatchObject({
      ok: false,
      error: { code: 'FORBIDDEN', details },
    });
    // Nor does the room see them typing.
    const typing = record(ws, 'typing');
    expect(await call(bs, 'typing.start', { roomId: room.id })).toMatchObject({
      ok: false,
      error: { code: 'FORBIDDEN', details },
    });
    // Leaving and rejoining would lift the mute: refused while it holds.
    expect(
      (
        await http()
          .post(api(`/rooms/${room.id}/leave`))
          .set(bob.auth)
          .expect(403)
      ).body,
    ).toMatchObject({ code: 'FORBIDDEN', details });

    // Still reads: history, search, the member list, read markers; still receives the room.
    await http()
      .get(api(`/rooms/${room.id}/messages`))
      .set(bob.auth)
      .expect(200);
    await ok(bs, 'history.fetch', { roomId: room.id });
    await ok(bs, 'read.mark', { roomId: room.id, messageId: earlier.id });
    const heard = next(bs, 'message.created', (m) => m.content === 'still hears');
    await send(t, owner, room.id, 'still hears');
    await heard;
    expect((await members(room.id)).find((m) => m.userId === bob.id)).toMatchObject({
      muted: true,
      mutedUntil: res.body.mutedUntil,
    });

    // Muted until lifted: until is null everywhere.
    await mute(owner, room.id, { userId: bob.id, reason: 'cool down' }).expect(201);
    const forever = await restSend(bob, room.id).expect(403);
    expect(forever.body.details).toEqual({ reason: 'cool down', until: null });
    expect(forever.body.message).toContain('until lifted');

    const unmuted = next(bs, 'member.unmuted');
    await http()
      .delete(api(`/rooms/${room.id}/mutes/${bob.id}`))
      .set(owner.auth)
      .expect(204);
    expect(await unmuted).toEqual({ roomId: room.id, userId: bob.id, by: owner.id });
    await restSend(bob, room.id).expect(201);
    await ok(bs, 'message.send', { roomId: room.id, clientMsgId: cmid(), content: 'back' });
    await ok(bs, 'reaction.add', { messageId: earlier.id, emoji: '👍' });
    expect(typing.of('typing')).toEqual([]); // nothing reached the room while muted
    const typed = next(ws, 'typing', (p) => p.userId === bob.id && p.typing);
    await ok(bs, 'typing.start', { roomId: room.id });
    await typed;
    await http()
      .delete(api(`/rooms/${room.id}/mutes/${bob.id}`))
      .set(owner.auth)
      .expect(404);

    expect(await audit('member.mute', bob.id)).toEqual([
      expect.objectContaining({
        actor_id: owner.id,
        reason: 'spam',
        details: { until: details.until },
      }),
      expect.objectContaining({ reason: 'cool down', details: { until: null } }),
    ]);
    expect(await audit('member.unmute', bob.id)).toHaveLength(1);
  });

  it('a mute ends by itself at its end', async () => {
    const room = await ownedRoom();
    const bob = await member(room);
    await mute(owner, room.id, { userId: bob.id, durationSec: 1 }).expect(201);
    await restSend(bob, room.id).expect(403);
    await until(async () => (await restSend(bob, room.id)).status === 201, 5000, 'the mute to end');
    expect((await members(room.id)).find((m) => m.userId === bob.id)).toMatchObject({
      muted: false,
      mutedUntil: null,
    });
  });

  it("the member list shows a mute's reason to the muted member and the room's moderators only", async () => {
    const room = await ownedRoom();
    const [bob, carol, mod] = [await member(room), await member(room), await member(room)];
    await appoint(owner, room.id, mod.id, 'moderator').expect(200);
    await mute(mod, room.id, { userId: bob.id, durationSec: 3600, reason: 'spam' }).expect(201);
    await mute(mod, room.id, { userId: carol.id }).expect(201); // no reason: ''
    const reasons = async (viewer: TestUser) => {
      const res = await http()
        .get(api(`/rooms/${room.id}/members`))
        .set(viewer.auth)
        .expect(200);
      const items = res.body.items as { userId: string; muteReason: string | null }[];
      return Object.fromEntries(items.map((m) => [m.userId, m.muteReason]));
    };
    const all = { [owner.id]: null, [bob.id]: 'spam', [carol.id]: '', [mod.id]: null };
    // Those who may moderate the room: its owner, its moderators, admins (not members).
    expect(await reasons(owner)).toEqual(all);
    expect(await reasons(mod)).toEqual(all);
    expect(await reasons(admin)).toEqual(all);
    // The muted member sees their own reason (after a reload too), not another's.
    expect(await reasons(bob)).toEqual({ ...all, [carol.id]: null });
    expect(await reasons(carol)).toEqual({ ...all, [bob.id]: null });
    // A plain member sees the mutes, not why.
    const dave = await member(room);
    expect(await reasons(dave)).toEqual({
      ...all,
      [bob.id]: null,
      [carol.id]: null,
      [dave.id]: null,
    });
    // The same rule on the socket's room.join.
    const joined = async (viewer: TestUser) =>
      (await ok(await open(viewer), 'room.join', { roomId: room.id })).members.find(
        (m) => m.userId === bob.id,
      );
    expect(await joined(bob)).toMatchObject({ muted: true, muteReason: 'spam' });
    expect(await joined(mod)).toMatchObject({ muted: true, muteReason: 'spam' });
    expect(await joined(dave)).toMatchObject({ muted: true, muteReason: null });
    // A moderator no longer: the reason is gone for them (current state, not a cached role).
    await appoint(owner, room.id, mod.id, 'member').expect(200);
    expect((await reasons(mod))[bob.id]).toBeNull();
    // Lifted: no reason for anyone.
    await http()
      .delete(api(`/rooms/${room.id}/mutes/${bob.id}`))
      .set(owner.auth)
      .expect(204);
    expect((await reasons(owner))[bob.id]).toBeNull();
    expect((await reasons(bob))[bob.id]).toBeNull();
  });

  it('a banned user leaves at once and cannot come back by any path until unbanned', async () => {
    const room = await ownedRoom();
    const [mallory, bob] = [await member(room), await member(room)];
    const ms = await open(mallory, room.id);
    const bs = await open(bob, room.id);
    const seen = record(ms, 'message.created', 'member.banned', 'member.unbanned');

    const toUser = next(ms, 'member.banned');
    const toRoom = next(bs, 'member.banned');
    const res = await ban(owner, room.id, {
      userId: mallory.id,
      durationSec: 3600,
      reason: 'abuse',
    }).expect(201);
    expect(res.body).toMatchObject({ userId: mallory.id, reason: 'abuse', bannedBy: owner.id });
    expect(res.body.until).toMatch(ISO);
    const event = {
      roomId: room.id,
      userId: mallory.id,
      until: res.body.until,
      reason: 'abuse',
      by: owner.id,
    };
    expect(await toUser).toEqual(event);
    const { reason: _, ...withoutReason } = event;
    expect(await toRoom).toEqual(withoutReason); // the reason is for the user and the moderators
    const details = { reason: 'abuse', until: res.body.until };

    // Gone from the room at once: no more messages reach the socket.
    const heard = next(bs, 'message.created', (m) => m.content === 'after the ban');
    await send(t, owner, room.id, 'after the ban');
    await heard;
    await ok(ms, 'history.fetch', { roomId: room.id }).catch(() => undefined); // a round trip
    expect(seen.of('message.created').map((m) => m.content)).not.toContain('after the ban');
    expect((await members(room.id)).map((m) => m.userId)).not.toContain(mallory.id);
    await restSend(mallory, room.id).expect(403);

    // No way back: REST join, socket room.join, being added by the owner or an admin.
    const rejoin = await http()
      .post(api(`/rooms/${room.id}/join`))
      .set(mallory.auth)
      .expect(403);
    expect(rejoin.body).toMatchObject({ code: 'FORBIDDEN', details });
    expect(rejoin.body.message).toContain('abuse');
    expect(await call(ms, 'room.join', { roomId: room.id })).toMatchObject({
      ok: false,
      error: { code: 'FORBIDDEN', details },
    });
    for (const by of [owner, admin]) {
      const add = await http()
        .post(api(`/rooms/${room.id}/members`))
        .set(by.auth)
        .send({ userId: mallory.id })
        .expect(403);
      expect(add.body.details).toEqual(details);
    }
    const again = next(bs, 'message.created', (m) => m.content === 'still out');
    await send(t, owner, room.id, 'still out');
    await again;
    await call(ms, 'history.fetch', { roomId: room.id });
    expect(seen.of('message.created').map((m) => m.content)).not.toContain('still out');
    expect((await members(room.id)).map((m) => m.userId)).not.toContain(mallory.id);

    // The ban list: moderators see it, members do not.
    const list = await http()
      .get(api(`/rooms/${room.id}/bans`))
      .set(owner.auth)
      .expect(200);
    expect(list.body.items).toEqual([
      expect.objectContaining({ userId: mallory.id, username: mallory.username, reason: 'abuse' }),
    ]);
    await http()
      .get(api(`/rooms/${room.id}/bans`))
      .set(bob.auth)
      .expect(403);

    // Unban: told, and the way back is open.
    const unbanned = next(ms, 'member.unbanned');
    await http()
      .delete(api(`/rooms/${room.id}/bans/${mallory.id}`))
      .set(owner.auth)
      .expect(204);
    expect(await unbanned).toEqual({ roomId: room.id, userId: mallory.id, by: owner.id });
    await http()
      .delete(api(`/rooms/${room.id}/bans/${mallory.id}`))
      .set(owner.auth)
      .expect(404);
    await ok(ms, 'room.join', { roomId: room.id });
    await restSend(mallory, room.id).expect(201);

    expect(await audit('member.ban', mallory.id)).toEqual([
      expect.objectContaining({
        actor_id: owner.id,
        room_id: room.id,
        reason: 'abuse',
        details: { until: details.until },
      }),
    ]);
    expect(await audit('member.unban', mallory.id)).toHaveLength(1);
  });

  it('a ban holds for non-members and private rooms, and ends by itself', async () => {
    const priv = await ownedRoom('private');
    const eve = await newUser(t);
    await ban(owner, priv.id, { userId: eve.id }).expect(201);
    const add = await http()
      .post(api(`/rooms/${priv.id}/members`))
      .set(admin.auth)
      .send({ userId: eve.id })
      .expect(403);
    expect(add.body.details).toEqual({ reason: '', until: null });
    // A private room a banned user is not in stays invisible to them.
    await http()
      .post(api(`/rooms/${priv.id}/join`))
      .set(eve.auth)
      .expect(404);

    const pub = await ownedRoom();
    await ban(owner, pub.id, { userId: eve.id, durationSec: 1 }).expect(201);
    await http()
      .post(api(`/rooms/${pub.id}/join`))
      .set(eve.auth)
      .expect(403);
    await until(
      async () =>
        (
          await http()
            .post(api(`/rooms/${pub.id}/join`))
            .set(eve.auth)
        ).status === 200,
      5000,
      'the ban to end',
    );
  });

  it('archived rooms are read-only for everyone and reversible; only admins archive', async () => {
    const room = await ownedRoom();
    const bob = await member(room);
    const earlier = await send(t, bob, room.id, 'archived words');
    const bs = await open(bob, room.id);
    await join(t, admin, room.id);

    await http()
      .post(api(`/rooms/${room.id}/archive`))
      .set(owner.auth)
      .expect(403);
    await http()
      .post(api(`/rooms/${room.id}/archive`))
      .set(bob.auth)
      .expect(403);
    const archived = next(bs, 'room.archived');
    const res = await http()
      .post(api(`/rooms/${room.id}/archive`))
      .set(admin.auth)
      .expect(200);
    expect(res.body.archivedAt).toBeTruthy();
    expect(await archived).toEqual({
      roomId: room.id,
      archivedAt: new Date(res.body.archivedAt).toISOString(),
      by: admin.id,
    });
    // Archiving again changes nothing (and records nothing).
    await http()
      .post(api(`/rooms/${room.id}/archive`))
      .set(admin.auth)
      .expect(200);

    const refused = { code: 'FORBIDDEN', message: 'Room is archived' };
    for (const who of [bob, owner, admin]) {
      expect((await restSend(who, room.id).expect(403)).body).toMatchObject(refused);
    }
    expect(
      await call(bs, 'message.send', { roomId: room.id, clientMsgId: cmid(), content: 'x' }),
    ).toMatchObject({ ok: false, error: refused });
    expect(await call(bs, 'message.edit', { messageId: earlier.id, content: 'y' })).toMatchObject({
      ok: false,
      error: refused,
    });
    expect(await call(bs, 'reaction.add', { messageId: earlier.id, emoji: '👍' })).toMatchObject({
      ok: false,
      error: refused,
    });
    const carol = await newUser(t);
    expect(
      (
        await http()
          .post(api(`/rooms/${room.id}/join`))
          .set(carol.auth)
          .expect(403)
      ).body,
    ).toMatchObject(refused);
    const cs = await open(carol);
    expect(await call(cs, 'room.join', { roomId: room.id })).toMatchObject({
      ok: false,
      error: refused,
    });
    await http()
      .post(api(`/rooms/${room.id}/members`))
      .set(admin.auth)
      .send({ userId: carol.id })
      .expect(403);

    // History and search stay readable; the room says it is archived.
    const history = await http()
      .get(api(`/rooms/${room.id}/messages`))
      .set(bob.auth)
      .expect(200);
    expect(history.body.items.map((m: { content?: string }) => m.content)).toContain(
      'archived words',
    );
    const found = await http()
      .get(api(`/rooms/${room.id}/messages/search?q=archived`))
      .set(bob.auth)
      .expect(200);
    expect(found.body.items).toHaveLength(1);
    // Authors cannot delete there either (admins still may clean up).
    const del = await http()
      .delete(api(`/messages/${earlier.id}`))
      .set(bob.auth)
      .expect(403);
    expect(del.body).toMatchObject(refused);
    const opened = await ok(bs, 'room.join', { roomId: room.id });
    expect(opened.room.archivedAt).toBeTruthy();

    const unarchived = next(bs, 'room.unarchived');
    const back = await http()
      .delete(api(`/rooms/${room.id}/archive`))
      .set(admin.auth)
      .expect(200);
    expect(back.body.archivedAt).toBeNull();
    expect(await unarchived).toEqual({ roomId: room.id, archivedAt: null, by: admin.id });
    await restSend(bob, room.id).expect(201);
    await http()
      .post(api(`/rooms/${room.id}/join`))
      .set(carol.auth)
      .expect(200);

    expect(await audit('room.archive', room.id)).toEqual([
      expect.objectContaining({ actor_id: admin.id, room_id: room.id }),
    ]);
    expect(await audit('room.unarchive', room.id)).toHaveLength(1);
  });

  // Deterministic, on server PostgreSQL: a sanction passed the policy, then its write waits for
  // a row (a membership, or a user row, of its target or of its actor) that a transaction
  // holds; that transaction changes the party's role and commits: the target promoted (to
  // moderator, as the owner may; to admin), or the actor demoted (a moderator to member; an
  // admin to user). The write asks the policy again with the rows locked: refused, nothing
  // written.
  for (const [what, change] of [
    ['ban', 'target:moderator'],
    ['mute', 'target:moderator'],
    ['ban', 'target:admin'],
    ['mute', 'target:admin'],
    ['ban', 'actor:member'],
    ['mute', 'actor:member'],
    ['ban', 'actor:user'],
    ['mute', 'actor:user'],
    ['unban', 'actor:member'],
    ['unmute', 'actor:member'],
    ['mute', 'actor:suspended'],
  ] as const) {
    const [party, role] = change.split(':') as ['target' | 'actor', string];
    const inRoom = role === 'moderator' || role === 'member';
    (SERVER_URL ? it : it.skip)(
      `a ${what} whose ${party} became ${role} while it waited is refused (server PostgreSQL)`,
      async () => {
        const room = await ownedRoom();
        let actor: TestUser;
        if (change === 'actor:user') {
          actor = await newUser(t); // an admin, not a member
          await setRole(actor, 'admin');
        } else {
          actor = await member(room);
          await appoint(owner, room.id, actor.id, 'moderator').expect(200);
        }
        const target = await member(room);
        const who = party === 'target' ? target : actor;
        const lift = what === 'unban' || what === 'unmute';
        if (lift)
          await (what === 'unban' ? ban : mute)(owner, room.id, { userId: target.id }).expect((r) =>
            expect(r.status).toBeLessThan(300),
          );
        const other = t.app.get(DataSource).createQueryRunner();
        await other.connect();
        await other.startTransaction();
        try {
          if (inRoom)
            await other.query(
              `SELECT 1 FROM memberships WHERE room_id = $1 AND user_id = $2 FOR UPDATE`,
              [room.id, who.id],
            );
          else await other.query(`SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, [who.id]);
          const sanction = (
            lift
              ? http()
                  .delete(api(`/rooms/${room.id}/${what.slice(2)}s/${target.id}`))
                  .set(actor.auth)
              : (what === 'ban' ? ban : mute)(actor, room.id, {
                  userId: target.id,
                  durationSec: 60,
                })
          ).then((r) => r);
          await waitUntilBlocking(other); // the sanction's write waits for the row
          if (inRoom)
            await other.query(
              `UPDATE memberships SET role = $3 WHERE room_id = $1 AND user_id = $2`,
              [room.id, who.id, role],
            );
          else if (role === 'suspended')
            await other.query(
              `UPDATE users SET suspended_until = now() + interval '1 hour' WHERE id = $1`,
              [who.id],
            );
          else await other.query(`UPDATE users SET role = $2 WHERE id = $1`, [who.id, role]);
          await other.commitTransaction();
          const res = await sanction;
          expect(res.status).toBe(403);
          expect(res.body.code).toBe('FORBIDDEN');
        } finally {
          if (other.isTransactionActive) await other.rollbackTransaction();
          await other.release();
        }
        const now = (await members(room.id)).find((m) => m.userId === target.id);
        if (what === 'unban')
          expect(now).toBeUndefined(); // still banned
        else expect(now).toMatchObject({ muted: what === 'unmute' });
        expect(await audit(`member.${what}`, target.id)).toEqual([]);
      },
      30_000,
    );
  }

  // Each sanction's write locks the target's rows, then (spy) waits up to 400 ms for the other
  // to have locked them too. With shared locks upgraded later, both got there and then
  // deadlocked (PostgreSQL aborts one, which runs again: a third lock call); with the lock the
  // write needs taken at once, the second waits for the first to commit.
  for (const [first, second] of [
    ['mute', 'mute'],
    ['mute', 'ban'],
  ] as const) {
    (SERVER_URL ? it : it.skip)(
      `a ${first} and a ${second} of one member at once wait for each other, never deadlock (server PostgreSQL)`,
      async () => {
        const room = await ownedRoom();
        const target = await member(room);
        const store = t.app.get(RoomStore);
        const lock = store.lockSanctionParties.bind(store);
        let arrived = 0;
        let release = () => {};
        const both = new Promise<void>((resolve) => (release = resolve));
        const spy = jest
          .spyOn(store, 'lockSanctionParties')
          .mockImplementation(async (...args: Parameters<RoomStore['lockSanctionParties']>) => {
            const locked = await lock(...args);
            if (++arrived === 2) release();
            await Promise.race([both, sleep(400)]);
            return locked;
          });
        try {
          const [a, b] = await Promise.all(
            [first, second].map((what) =>
              (what === 'ban' ? ban : mute)(owner, room.id, { userId: target.id }).then((r) => r),
            ),
          );
          // Either may take the member's row first (the mute is sent first, but the two run
          // at once): the ban after the mute is 201, the mute after the ban finds no member,
          // 404. One of them succeeds, and neither runs again (no deadlock retry).
          for (const r of [a, b]) expect([200, 201, 204, 404]).toContain(r.status);
          expect(Math.min(a.status, b.status)).toBeLessThan(300);
          expect(spy).toHaveBeenCalledTimes(2);
        } finally {
          spy.mockRestore();
        }
      },
      30_000,
    );
  }

  it(`a join racing a ban never leaves a membership (${SERVER_URL ? 'server PostgreSQL' : 'PGlite'})`, async () => {
    const room = await ownedRoom();
    const rounds = SERVER_URL ? 20 : 3;
    for (let i = 0; i < rounds; i++) {
      const u = await newUser(t);
      const joins = Array.from({ length: 12 }, () =>
        http()
          .post(api(`/rooms/${room.id}/join`))
          .set(u.auth),
      );
      const adds = Array.from({ length: 4 }, () =>
        http()
          .post(api(`/rooms/${room.id}/members`))
          .set(owner.auth)
          .send({ userId: u.id }),
      );
      const banning = (async () => {
        await sleep(i % 4); // vary who goes first
        return ban(owner, room.id, { userId: u.id, reason: 'race' });
      })();
      const [results, banned] = await Promise.all([
        Promise.all([...joins, ...adds].map((r) => r.then((x) => x))),
        banning,
      ]);
      expect(banned.status).toBe(201);
      expect((await members(room.id)).map((m) => m.userId)).not.toContain(u.id);
      await restSend(u, room.id).expect(403);
      // An add that lost the race to the ban finds no member to answer with: 404.
      for (const r of results) expect([200, 201, 403, 404]).toContain(r.status);
    }
  });
});
