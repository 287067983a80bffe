import { DataSource } from 'typeorm';
import { startApp, TestApp } from './support/app';
import {
  ADMIN_ENV,
  join,
  loginAdmin,
  NO_WRITE_LIMITS,
  newRoom,
  newUser,
  send,
  SentMessage,
  TestRoom,
  TestUser,
} from './support/factories';
import { call, type ClientSocket, connect, next, ok, record } from './support/socket';
import type { MessageDto, ReportDto } from '../src/common/wire';

const api = (path: string) => `/api/v1${path}`;
const REPORT_LIMIT = 15;

/**
 * Issue 14: removal of anyone's message by a room's moderators (with a reason only its author
 * and the moderators see), and reports of messages with their queues and resolution, over REST
 * and the socket. The race of concurrent resolutions is real on server PostgreSQL (CI's second
 * pass); PGlite runs it serialised.
 */
describe('moderation: removal by moderation and reports (e2e)', () => {
  let t: TestApp;
  let db: DataSource;
  let admin: TestUser;
  /** Moderator of room A only. */
  let mod: TestUser;
  /** Moderator of room B only. */
  let modB: TestUser;
  let alice: TestUser;
  let bob: TestUser;
  let roomA: TestRoom;
  let roomB: TestRoom;
  const sockets: ClientSocket[] = [];

  const makeModerator = (u: TestUser, room: TestRoom) =>
    // The route that appoints moderators is another part of issue 14: set the role directly.
    db.query(`UPDATE memberships SET role = 'moderator' WHERE room_id = $1 AND user_id = $2`, [
      room.id,
      u.id,
    ]);
  const audit = (targetId: string) =>
    db.query<
      { action: string; actor_id: string; reason: string; room_id: string; details: unknown }[]
    >(
      `SELECT action, actor_id, reason, room_id, details FROM audit_log WHERE target_id = $1 ORDER BY id`,
      [targetId],
    );
  const open = async (u: TestUser, room?: TestRoom) => {
    const s = await connect(t, u.accessToken);
    sockets.push(s);
    if (room) await ok(s, 'room.join', { roomId: room.id });
    return s;
  };
  const history = async (u: TestUser, room: TestRoom) =>
    (
      await t
        .http()
        .get(api(`/rooms/${room.id}/messages`))
        .set(u.auth)
        .expect(200)
    ).body.items as MessageDto[];
  const report = (u: TestUser, m: SentMessage, body: object = { category: 'spam' }) =>
    t
      .http()
      .post(api(`/messages/${m.id}/reports`))
      .set(u.auth)
      .send(body);

  beforeAll(async () => {
    t = await startApp({
      ...ADMIN_ENV,
      ...NO_WRITE_LIMITS,
      RATE_LIMIT_REPORT: String(REPORT_LIMIT),
      RATE_LIMIT_MODERATE: '1000000',
      USER_MAX_INFLIGHT: '64',
    });
    db = t.app.get(DataSource);
    admin = await loginAdmin(t);
    [mod, modB, alice, bob] = [
      await newUser(t),
      await newUser(t),
      await newUser(t),
      await newUser(t),
    ];
    [roomA, roomB] = [await newRoom(t, admin), await newRoom(t, admin)];
    for (const u of [mod, modB, alice, bob]) {
      await join(t, u, roomA.id);
      await join(t, u, roomB.id);
    }
    await makeModerator(mod, roomA);
    await makeModerator(modB, roomB);
  });
  afterEach(() => {
    for (const s of sockets.splice(0)) s.close();
  });
  afterAll(() => t.close());

  describe('removal by moderation', () => {
    it("a moderator removes someone's message with a reason: the author and moderators see why, the room sees only that it was moderated", async () => {
      const [bobS, aliceS, modS, adminS] = [
        await open(bob, roomA),
        await open(alice, roomA),
        await open(mod, roomA),
        await open(admin), // not in the room: gets the reason on its own channel
      ];
      const heard = [bobS, aliceS, modS, adminS].map((s) => record(s, 'message.deleted'));
      const m = await send(t, bob, roomA.id, 'buy cheap watches');
      const toAdmin = next(adminS, 'message.deleted', (p) => p.id === m.id);
      await t
        .http()
        .delete(api(`/messages/${m.id}`))
        .query({ reason: 'Advertising' })
        .set(mod.auth)
        .expect(204);
      // A later message is the barrier: everything about the deletion arrived before it.
      const barrier = Promise.all(
        [bobS, aliceS, modS].map((s) => next(s, 'message.created', (p) => p.content === 'after')),
      );
      await send(t, alice, roomA.id, 'after');
      await barrier;
      const [toBob, toAlice, toMod] = heard.map((h) =>
        h.of('message.deleted').filter((p) => p.id === m.id),
      );
      expect(toBob).toEqual([
        expect.objectContaining({ removedByModeration: true, removalReason: 'Advertising' }),
      ]);
      expect(toMod).toEqual([expect.objectContaining({ removalReason: 'Advertising' })]);
      expect(toAlice).toHaveLength(1);
      expect(toAlice[0]).toMatchObject({
        removedByModeration: true,
        deletedAt: expect.any(String),
      });
      expect(toAlice[0]).not.toHaveProperty('removalReason');
      expect(toAlice[0]).not.toHaveProperty('content');
      expect(await toAdmin).toMatchObject({ removalReason: 'Advertising' });

      // History and the changes feed shape it per viewer.
      const tomb = (items: MessageDto[]) => items.find((x) => x.id === m.id)!;
      expect(tomb(await history(bob, roomA))).toMatchObject({ removalReason: 'Advertising' });
      expect(tomb(await history(mod, roomA))).toMatchObject({ removalReason: 'Advertising' });
      expect(tomb(await history(admin, roomA))).toMatchObject({ removalReason: 'Advertising' });
      const seenByAlice = tomb(await history(alice, roomA));
      expect(seenByAlice.removedByModeration).toBe(true);
      expect(seenByAlice).not.toHaveProperty('removalReason');
      const changes = await t
        .http()
        .get(api(`/rooms/${roomA.id}/messages/changes`))
        .query({ since: m.version })
        .set(alice.auth)
        .expect(200);
      expect(tomb(changes.body.items)).not.toHaveProperty('removalReason');
      // …and so does the socket's history and join.
      const viaSocket = await ok(aliceS, 'history.fetch', { roomId: roomA.id });
      expect(tomb(viaSocket.items)).not.toHaveProperty('removalReason');
      const joined = await ok(bobS, 'room.join', { roomId: roomA.id, since: m.version - 1 });
      expect(tomb(joined.messages)).toMatchObject({ removalReason: 'Advertising' });

      expect(await audit(String(m.id))).toEqual([
        {
          action: 'message.remove',
          actor_id: mod.id,
          reason: 'Advertising',
          room_id: roomA.id,
          details: { authorId: bob.id },
        },
      ]);
    });

    it('over the socket too, and an admin may remove any message; without a reason the reason is empty', async () => {
      const modS = await open(mod, roomA);
      const m1 = await send(t, alice, roomA.id, 'one');
      expect(await call(modS, 'message.delete', { messageId: m1.id, reason: 'Rude' })).toEqual({
        ok: true,
        data: null,
      });
      const m2 = await send(t, alice, roomA.id, 'two');
      await t
        .http()
        .delete(api(`/messages/${m2.id}`))
        .set(admin.auth)
        .expect(204);
      const items = await history(alice, roomA);
      expect(items.find((x) => x.id === m1.id)).toMatchObject({
        removedByModeration: true,
        removalReason: 'Rude',
      });
      expect(items.find((x) => x.id === m2.id)).toMatchObject({
        removedByModeration: true,
        removalReason: '',
      });
      expect((await audit(String(m2.id))).map((r) => [r.action, r.actor_id])).toEqual([
        ['message.remove', admin.id],
      ]);
    });

    it('a moderator of room A has no power in room B; members cannot remove others; authors deleting their own is not moderation', async () => {
      const inB = await send(t, bob, roomB.id, 'in B');
      const refused = await t
        .http()
        .delete(api(`/messages/${inB.id}`))
        .query({ reason: 'x' })
        .set(mod.auth)
        .expect(403);
      expect(refused.body.code).toBe('FORBIDDEN');
      const modS = await open(mod);
      expect(await call(modS, 'message.delete', { messageId: inB.id, reason: 'x' })).toMatchObject({
        ok: false,
        error: { code: 'FORBIDDEN' },
      });
      const inA = await send(t, bob, roomA.id, 'in A');
      await t
        .http()
        .delete(api(`/messages/${inA.id}`))
        .set(alice.auth)
        .expect(403);
      await t
        .http()
        .delete(api(`/messages/${inA.id}`))
        .query({ reason: 'x'.repeat(501) })
        .set(mod.auth)
        .expect(400);
      // The author deletes their own: a plain tombstone, whatever reason they give.
      await t
        .http()
        .delete(api(`/messages/${inA.id}`))
        .query({ reason: 'changed my mind' })
        .set(bob.auth)
        .expect(204);
      const own = (await history(mod, roomA)).find((x) => x.id === inA.id)!;
      expect(own.deletedAt).not.toBeNull();
      expect(own).not.toHaveProperty('removedByModeration');
      expect(own).not.toHaveProperty('removalReason');
      // Nothing was audited for any of it.
      expect(await audit(String(inA.id))).toEqual([]);
      expect(await audit(String(inB.id))).toEqual([]);
    });
  });

  describe('reports', () => {
    it('a member reports over REST and the socket, once per message; reports reach online moderators and admins, not members', async () => {
      const [modS, adminS, modBS, bobS] = [
        await open(mod), // not in the room on this socket: reports come on the user channel
        await open(admin),
        await open(modB),
        await open(bob, roomA),
      ];
      const heard = [modBS, bobS].map((s) => record(s, 'report.created'));
      const m = await send(t, bob, roomA.id, 'spam spam');
      const toMod = next(modS, 'report.created', (r) => r.messageId === m.id);
      const toAdmin = next(adminS, 'report.created', (r) => r.messageId === m.id);
      const res = await report(alice, m, { category: 'spam', text: 'same link everywhere' }).expect(
        201,
      );
      expect(res.body).toMatchObject({
        messageId: m.id,
        roomId: roomA.id,
        reporterId: alice.id,
        category: 'spam',
        text: 'same link everywhere',
        status: 'open',
        action: null,
        resolvedBy: null,
        message: { id: m.id, content: 'spam spam' },
      });
      expect(await toMod).toMatchObject({ id: res.body.id, message: { content: 'spam spam' } });
      expect(await toAdmin).toMatchObject({ id: res.body.id });
      const again = await report(alice, m, { category: 'abuse' }).expect(409);
      expect(again.body.code).toBe('CONFLICT');

      // Over the socket: the same rules.
      const aliceS = await open(alice);
      const m2 = await send(t, bob, roomA.id, 'more spam');
      const toMod2 = next(modS, 'report.created', (r) => r.messageId === m2.id);
      const viaSocket = await ok(aliceS, 'message.report', {
        messageId: m2.id,
        category: 'harassment',
      });
      expect(viaSocket).toMatchObject({
        messageId: m2.id,
        category: 'harassment',
        text: '',
        status: 'open',
      });
      expect(
        await call(aliceS, 'message.report', { messageId: m2.id, category: 'spam' }),
      ).toMatchObject({
        ok: false,
        error: { code: 'CONFLICT' },
      });
      expect(
        await call(aliceS, 'message.report', { messageId: m2.id, category: 'nonsense' as never }),
      ).toMatchObject({
        ok: false,
        error: { code: 'VALIDATION_FAILED' },
      });
      await toMod2;

      // A barrier for the sockets that must hear nothing: a message in room A after the reports.
      await ok(modBS, 'room.join', { roomId: roomA.id });
      const barrier = Promise.all(
        [bobS, modBS].map((s) => next(s, 'message.created', (p) => p.content === 'barrier')),
      );
      await send(t, alice, roomA.id, 'barrier');
      await barrier;
      expect(heard.map((h) => h.of('report.created'))).toEqual([[], []]);
    });

    it('refuses reports of own messages, deleted or unknown messages, unreadable rooms and conversations', async () => {
      const own = await send(t, alice, roomA.id, 'mine');
      const r1 = await report(alice, own).expect(403);
      expect(r1.body.message).toBe('You cannot report your own message');
      const gone = await send(t, bob, roomA.id, 'soon gone');
      await t
        .http()
        .delete(api(`/messages/${gone.id}`))
        .set(bob.auth)
        .expect(204);
      await report(alice, gone).expect(404);
      await report(alice, { id: 999999999 } as SentMessage).expect(404);
      await report(alice, own, { category: 'spam', text: 'x'.repeat(1001) }).expect(400);
      const secret = await newRoom(t, admin, { visibility: 'private' });
      const hidden = await send(t, admin, secret.id, 'admins are members of the rooms they create');
      await report(alice, hidden).expect(404);
      const persona = await t
        .http()
        .post(api('/personas'))
        .set(admin.auth)
        .send({ handle: `p${Date.now()}`, displayName: 'P' })
        .expect(201);
      const conv = await t
        .http()
        .post(api('/conversations'))
        .set(alice.auth)
        .send({ personaId: persona.body.id })
        .expect(201);
      const inConv = await send(t, alice, conv.body.id, 'hello');
      const r2 = await report(alice, inConv).expect(403);
      expect(r2.body.message).toBe('Conversations have no moderators');
    });

    it('queues: per room for its moderators (status filter, keyset pages), global for admins; nobody else', async () => {
      const room = await newRoom(t, admin);
      const reporters = [await newUser(t), await newUser(t), await newUser(t)];
      for (const u of [mod, bob, ...reporters]) await join(t, u, room.id);
      await makeModerator(mod, room);
      const target = await send(t, bob, room.id, 'target');
      const others = [await send(t, bob, room.id, 'a'), await send(t, bob, room.id, 'b')];
      const ids: string[] = [];
      for (const u of reporters) ids.push((await report(u, target).expect(201)).body.id);
      for (const m of others) ids.push((await report(reporters[0], m).expect(201)).body.id);

      const pages = async (who: TestUser, path: string, status?: string) => {
        const seen: ReportDto[] = [];
        let cursor: string | undefined;
        do {
          const res = await t
            .http()
            .get(api(path))
            .query({ limit: 2, ...(status ? { status } : {}), ...(cursor ? { cursor } : {}) })
            .set(who.auth)
            .expect(200);
          expect(res.body.items.length).toBeLessThanOrEqual(2);
          seen.push(...(res.body.items as ReportDto[]));
          cursor = res.body.nextCursor ?? undefined;
        } while (cursor);
        return seen;
      };
      const queue = await pages(mod, `/rooms/${room.id}/reports`);
      expect(queue.map((r) => r.id)).toEqual([...ids].reverse()); // newest first, each once
      expect(queue.every((r) => r.status === 'open' && r.message?.roomId === room.id)).toBe(true);
      await t
        .http()
        .post(api(`/reports/${ids[0]}/dismiss`))
        .set(mod.auth)
        .send({ note: 'fine' })
        .expect(200);
      await t
        .http()
        .post(api(`/reports/${ids[1]}/resolve`))
        .set(mod.auth)
        .send({ action: 'none' })
        .expect(200);
      expect((await pages(mod, `/rooms/${room.id}/reports`, 'open')).map((r) => r.id)).toEqual([
        ids[4],
        ids[3],
        ids[2],
      ]);
      expect((await pages(mod, `/rooms/${room.id}/reports`, 'dismissed')).map((r) => r.id)).toEqual(
        [ids[0]],
      );
      const resolved = await pages(admin, `/rooms/${room.id}/reports`, 'resolved');
      expect(resolved).toEqual([
        expect.objectContaining({ id: ids[1], action: 'none', resolvedBy: mod.id }),
      ]);

      // The global queue (admins): this room's reports among the others'.
      const global = await pages(admin, '/admin/reports');
      expect(global.filter((r) => r.roomId === room.id).map((r) => r.id)).toEqual([
        ids[4],
        ids[3],
        ids[2],
      ]);
      expect(new Set(global.map((r) => r.id)).size).toBe(global.length);

      // Nobody else: a moderator of another room, a member, a non-admin on the global queue.
      for (const who of [modB, bob]) {
        await t
          .http()
          .get(api(`/rooms/${room.id}/reports`))
          .set(who.auth)
          .expect(403);
      }
      await t.http().get(api('/admin/reports')).set(mod.auth).expect(403);
      await t
        .http()
        .get(api(`/rooms/${room.id}/reports`))
        .query({ status: 'closed' })
        .set(mod.auth)
        .expect(400);
      await t
        .http()
        .get(api(`/rooms/${room.id}/reports`))
        .query({ cursor: 'garbage' })
        .set(mod.auth)
        .expect(400);
    });

    it('resolving with delete removes the message with the reason; closed reports cannot be closed again; audited', async () => {
      const modS = await open(mod);
      const bobS = await open(bob, roomA);
      const m = await send(t, bob, roomA.id, 'offending');
      const created = (await report(alice, m, { category: 'abuse' }).expect(201)).body as ReportDto;
      const resolvedEvent = next(modS, 'report.resolved', (r) => r.id === created.id);
      const deleted = next(bobS, 'message.deleted', (p) => p.id === m.id);
      const res = await t
        .http()
        .post(api(`/reports/${created.id}/resolve`))
        .set(mod.auth)
        .send({ action: 'delete', reason: 'Abusive' })
        .expect(200);
      expect(res.body).toMatchObject({
        id: created.id,
        status: 'resolved',
        action: 'delete',
        resolutionNote: 'Abusive',
        resolvedBy: mod.id,
        resolvedAt: expect.any(String),
        message: { id: m.id, removedByModeration: true, removalReason: 'Abusive' },
      });
      expect(await resolvedEvent).toMatchObject({ status: 'resolved', action: 'delete' });
      expect(await deleted).toMatchObject({ removedByModeration: true, removalReason: 'Abusive' });
      const seen = (await history(alice, roomA)).find((x) => x.id === m.id)!;
      expect(seen).toMatchObject({ removedByModeration: true, deletedAt: expect.any(String) });
      expect(seen).not.toHaveProperty('removalReason');

      for (const [path, body] of [
        ['resolve', { action: 'none' }],
        ['dismiss', {}],
      ] as const) {
        const again = await t
          .http()
          .post(api(`/reports/${created.id}/${path}`))
          .set(admin.auth)
          .send(body)
          .expect(409);
        expect(again.body.code).toBe('CONFLICT');
      }
      expect(await audit(created.id)).toEqual([
        {
          action: 'report.resolve',
          actor_id: mod.id,
          reason: 'Abusive',
          room_id: roomA.id,
          details: { action: 'delete', messageId: m.id },
        },
      ]);
      expect((await audit(String(m.id))).map((r) => [r.action, r.actor_id, r.reason])).toEqual([
        ['message.remove', mod.id, 'Abusive'],
      ]);
    });

    it('resolving with mute or ban sanctions the author (refused for the room owner: the report stays open)', async () => {
      const resolve = (id: string, u: TestUser, body: object) =>
        t
          .http()
          .post(api(`/reports/${id}/resolve`))
          .set(u.auth)
          .send(body);
      const sendAs = (u: TestUser, clientMsgId: string) =>
        t
          .http()
          .post(api(`/rooms/${roomA.id}/messages`))
          .set(u.auth)
          .send({ clientMsgId, content: 'again' });

      const first = (await report(modB, await send(t, bob, roomA.id, 'rude')).expect(201))
        .body as ReportDto;
      await resolve(first.id, mod, { action: 'mute', durationSec: 600, reason: 'Rude' }).expect(
        200,
      );
      const refused = await sendAs(bob, `muted-${Date.now()}`).expect(403);
      expect(refused.body.details).toMatchObject({ reason: 'Rude' });
      expect(
        (await audit(bob.id)).filter((r) => r.action === 'member.mute').map((r) => r.actor_id),
      ).toEqual([mod.id]);

      // The room's owner (an admin) cannot be banned: 403, and the report stays open.
      const byOwner = (await report(modB, await send(t, admin, roomA.id, 'meh')).expect(201))
        .body as ReportDto;
      expect((await resolve(byOwner.id, mod, { action: 'ban' }).expect(403)).body.code).toBe(
        'FORBIDDEN',
      );
      await resolve(byOwner.id, mod, { action: 'none' }).expect(200);
      await t
        .http()
        .delete(api(`/rooms/${roomA.id}/mutes/${bob.id}`))
        .set(mod.auth)
        .expect(204);

      const second = (await report(modB, await send(t, bob, roomA.id, 'worse')).expect(201))
        .body as ReportDto;
      const banned = await resolve(second.id, mod, { action: 'ban', reason: 'Spam' }).expect(200);
      expect(banned.body).toMatchObject({ status: 'resolved', action: 'ban' });
      await sendAs(bob, `banned-${Date.now()}`).expect(403);
      await t
        .http()
        .post(api(`/rooms/${roomA.id}/join`))
        .set(bob.auth)
        .expect(403);
      await resolve(second.id, mod, { action: 'ban' }).expect(409);
      // Lifted, for the tests after this one.
      await t
        .http()
        .delete(api(`/rooms/${roomA.id}/bans/${bob.id}`))
        .set(mod.auth)
        .expect(204);
      await join(t, bob, roomA.id);
    });

    it('dismiss and resolve are for the room moderators and admins only', async () => {
      const m = await send(t, bob, roomA.id, 'borderline');
      const created = (await report(alice, m).expect(201)).body as ReportDto;
      const resolve = (u: TestUser, body: object) =>
        t
          .http()
          .post(api(`/reports/${created.id}/resolve`))
          .set(u.auth)
          .send(body);
      await resolve(modB, { action: 'none' }).expect(403);
      await resolve(alice, { action: 'none' }).expect(403);
      await t
        .http()
        .post(api(`/reports/${created.id}/dismiss`))
        .set(bob.auth)
        .send({})
        .expect(403);
      await t
        .http()
        .post(api('/reports/00000000-0000-4000-8000-000000000000/dismiss'))
        .set(mod.auth)
        .send({})
        .expect(404);
      await resolve(mod, { action: 'explode' }).expect(400);
      expect(await audit(created.id)).toEqual([]);

      const res = await t
        .http()
        .post(api(`/reports/${created.id}/dismiss`))
        .set(admin.auth)
        .send({ note: 'Within the rules' })
        .expect(200);
      expect(res.body).toMatchObject({
        status: 'dismissed',
        action: null,
        resolutionNote: 'Within the rules',
        resolvedBy: admin.id,
        message: { id: m.id, content: 'borderline' },
      });
      expect(await audit(created.id)).toEqual([
        {
          action: 'report.dismiss',
          actor_id: admin.id,
          reason: 'Within the rules',
          room_id: roomA.id,
          details: { messageId: m.id },
        },
      ]);
      // The message is untouched.
      expect((await history(alice, roomA)).find((x) => x.id === m.id)?.content).toBe('borderline');
    });

    it('concurrent resolutions of one report: exactly one wins, the others get CONFLICT and change nothing', async () => {
      const rounds = 5;
      const reporter = await newUser(t);
      await join(t, reporter, roomA.id);
      for (let i = 0; i < rounds; i++) {
        const m = await send(t, bob, roomA.id, `race ${i}`);
        const created = (await report(reporter, m).expect(201)).body as ReportDto;
        const attempts = [
          ...[mod, admin, mod, admin].map((u, k) =>
            t
              .http()
              .post(api(`/reports/${created.id}/resolve`))
              .set(u.auth)
              .send(
                k % 2
                  ? { action: 'delete', reason: `by ${k}` }
                  : { action: 'none', reason: `by ${k}` },
              ),
          ),
          ...[mod, admin].map((u) =>
            t
              .http()
              .post(api(`/reports/${created.id}/dismiss`))
              .set(u.auth)
              .send({ note: 'd' }),
          ),
        ];
        const statuses = (await Promise.all(attempts)).map((r) => r.status);
        expect(statuses.filter((s) => s === 200)).toHaveLength(1);
        expect(statuses.filter((s) => s === 409)).toHaveLength(attempts.length - 1);
        const rows = await audit(created.id);
        expect(rows).toHaveLength(1);
        const winner = rows[0];
        // Only the winner acted: the message is removed exactly when the winner said delete.
        const removed = await audit(String(m.id));
        const [report_] = await db.query<
          { status: string; action: string | null; resolution_note: string }[]
        >(`SELECT status, action, resolution_note FROM reports WHERE id = $1`, [created.id]);
        const [msg] = await db.query<{ deleted: boolean }[]>(
          `SELECT deleted_at IS NOT NULL AS deleted FROM messages WHERE id = $1`,
          [m.id],
        );
        if (winner.action === 'report.dismiss') {
          expect(report_).toEqual({ status: 'dismissed', action: null, resolution_note: 'd' });
          expect(msg.deleted).toBe(false);
          expect(removed).toEqual([]);
        } else {
          expect(report_.status).toBe('resolved');
          expect(report_.resolution_note).toBe(winner.reason);
          expect(msg.deleted).toBe(report_.action === 'delete');
          expect(removed).toHaveLength(report_.action === 'delete' ? 1 : 0);
        }
      }
    }, 60_000);

    it(`is rate limited: at most RATE_LIMIT_REPORT (${REPORT_LIMIT}) reports per window, REST and socket together`, async () => {
      const reporter = await newUser(t);
      await join(t, reporter, roomB.id);
      const messages: SentMessage[] = [];
      for (let i = 0; i <= REPORT_LIMIT; i++) messages.push(await send(t, bob, roomB.id, `m${i}`));
      const s = await open(reporter);
      for (let i = 0; i < REPORT_LIMIT - 1; i++) await report(reporter, messages[i]).expect(201);
      await ok(s, 'message.report', {
        messageId: messages[REPORT_LIMIT - 1].id,
        category: 'other',
      });
      const over = await report(reporter, messages[REPORT_LIMIT]).expect(429);
      expect(over.headers['retry-after']).toBeDefined();
      expect(
        await call(s, 'message.report', {
          messageId: messages[REPORT_LIMIT].id,
          category: 'other',
        }),
      ).toMatchObject({
        ok: false,
        error: { code: 'RATE_LIMITED' },
      });
    });
  });
});
