import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { startApp, TestApp } from './support/app';
import { FakeLlm } from './support/fake-llm';
import {
  ADMIN_ENV,
  join,
  loginAdmin,
  newRoom,
  newUser,
  NO_WRITE_LIMITS,
  type TestRoom,
  type TestUser,
  uniqueName,
} from './support/factories';
import { call, type ClientSocket, connect, next, ok, record, sleep } from './support/socket';

const api = (path: string) => `/api/v1${path}`;

/** Slow mode and word filters (issue 14, items 3 and 6), over REST and the socket. */
describe('slow mode and word filters (e2e)', () => {
  let t: TestApp;
  let admin: TestUser;
  let db: DataSource;
  let fake: FakeLlm;
  const sockets: ClientSocket[] = [];
  const open = async (user: TestUser) => {
    const s = await connect(t, user.accessToken);
    sockets.push(s);
    return s;
  };

  beforeAll(async () => {
    fake = await FakeLlm.start();
    t = await startApp({
      LLM_BASE_URL: fake.url,
      PERSONA_MAX_REPLY_MS: '4000',
      ...ADMIN_ENV,
      ...NO_WRITE_LIMITS,
      USER_MAX_INFLIGHT: '64',
      RATE_LIMIT_MODERATE: '1000000',
      WORD_FILTERS_MAX_PER_ROOM: '4',
      SLOW_MODE_MAX_SECONDS: '3600',
    });
    admin = await loginAdmin(t);
    db = t.app.get(DataSource);
  });
  afterEach(() => {
    for (const s of sockets.splice(0)) s.close();
  });
  afterAll(async () => {
    await t.close();
    await fake.close();
  });

  const restSend = (
    user: TestUser,
    roomId: string,
    content: string,
    clientMsgId: string = randomUUID(),
  ) =>
    t
      .http()
      .post(api(`/rooms/${roomId}/messages`))
      .set(user.auth)
      .send({ clientMsgId, content });
  const sockSend = (
    s: ClientSocket,
    roomId: string,
    content: string,
    clientMsgId: string = randomUUID(),
  ) => call(s, 'message.send', { roomId, clientMsgId, content });
  const slowMode = (user: TestUser, roomId: string, seconds: number) =>
    t
      .http()
      .put(api(`/rooms/${roomId}/slow-mode`))
      .set(user.auth)
      .send({ seconds });
  const addFilter = (user: TestUser, path: string, pattern: string, action: 'block' | 'mask') =>
    t.http().post(api(path)).set(user.auth).send({ pattern, action });
  /** The test's stand-in for the moderator role (set by an admin or owner in the real flow). */
  const makeModerator = (roomId: string, userId: string) =>
    db.query(`UPDATE memberships SET role = 'moderator' WHERE room_id = $1 AND user_id = $2`, [
      roomId,
      userId,
    ]);
  const auditRows = (action: string, targetId?: string) =>
    db.query<{ actor_id: string; target_id: string; room_id: string | null; details: unknown }[]>(
      `SELECT actor_id, target_id, room_id, details FROM audit_log
        WHERE action = $1 AND ($2::text IS NULL OR target_id = $2) ORDER BY id`,
      [action, targetId ?? null],
    );
  const withMembers = async (...users: TestUser[]): Promise<TestRoom> => {
    const room = await newRoom(t, admin);
    for (const u of users) await join(t, u, room.id);
    return room;
  };

  describe('slow mode', () => {
    it('moderators set it; members get room.updated with slowModeMs; it is audited', async () => {
      const [member, moderator] = [await newUser(t), await newUser(t)];
      const room = await withMembers(member, moderator);
      await makeModerator(room.id, moderator.id);
      const s = await open(member);
      const updated = next(s, 'room.updated', (r) => r.id === room.id);
      const res = await slowMode(moderator, room.id, 30).expect(200);
      expect(res.body).toMatchObject({ id: room.id, slowModeMs: 30_000 });
      const event = await updated;
      expect(event).toMatchObject({ id: room.id, slowModeMs: 30_000 });
      // Not the moderator's view of the room: the member would take on their role.
      expect(event).not.toHaveProperty('myRole');
      expect(event).not.toHaveProperty('joined');
      const got = await t
        .http()
        .get(api(`/rooms/${room.id}`))
        .set(member.auth)
        .expect(200);
      expect(got.body.slowModeMs).toBe(30_000);
      expect(await auditRows('room.slow_mode', room.id)).toEqual([
        {
          actor_id: moderator.id,
          target_id: room.id,
          room_id: room.id,
          details: { slowModeMs: 30_000, previousMs: 0 },
        },
      ]);
      await slowMode(admin, room.id, 0).expect(200);
      expect((await auditRows('room.slow_mode', room.id)).map((r) => r.actor_id)).toEqual([
        moderator.id,
        admin.id,
      ]);
    });

    it('refused: members, moderators of another room, too long, bad input; 404 for hidden rooms', async () => {
      const [member, modB, outsider] = [await newUser(t), await newUser(t), await newUser(t)];
      const room = await withMembers(member, modB);
      const other = await withMembers(modB);
      await makeModerator(other.id, modB.id);
      const forbidden = await slowMode(member, room.id, 10).expect(403);
      expect(forbidden.body.code).toBe('FORBIDDEN');
      await slowMode(modB, room.id, 10).expect(403); // a moderator of B has no power in A
      await slowMode(modB, other.id, 10).expect(200);
      const tooLong = await slowMode(admin, room.id, 3601).expect(400);
      expect(tooLong.body.details).toEqual({ seconds: ['seconds must not be greater than 3600'] });
      await slowMode(admin, room.id, -1).expect(400);
      await t
        .http()
        .put(api(`/rooms/${room.id}/slow-mode`))
        .set(admin.auth)
        .send({ seconds: 1.5 })
        .expect(400);
      const hidden = await newRoom(t, admin, { visibility: 'private' });
      await slowMode(outsider, hidden.id, 10).expect(404);
      await slowMode(member, randomUUID(), 10).expect(404);
      expect((await auditRows('room.slow_mode', room.id)).length).toBe(0);
    });

    it("the interval the room has already is no change: no audit row, no room.updated; previousMs is the row's", async () => {
      const member = await newUser(t);
      const room = await withMembers(member);
      const s = await open(member);
      const seen = record(s, 'room.updated');
      await slowMode(admin, room.id, 30).expect(200);
      const again = await slowMode(admin, room.id, 30).expect(200);
      expect(again.body).toMatchObject({ id: room.id, slowModeMs: 30_000 });
      // A real change afterwards: its event comes after any the no-op would have sent.
      await restSend(member, room.id, 'loads the settings cache').expect(201);
      await db.query(`UPDATE rooms SET slow_mode_ms = 5000 WHERE id = $1`, [room.id]);
      const updated = next(s, 'room.updated', (r) => r.id === room.id && r.slowModeMs === 20_000);
      await slowMode(admin, room.id, 20).expect(200);
      await updated;
      expect(seen.of('room.updated').map((r) => r.slowModeMs)).toEqual([30_000, 20_000]);
      expect((await auditRows('room.slow_mode', room.id)).map((r) => r.details)).toEqual([
        { slowModeMs: 30_000, previousMs: 0 },
        // The row's interval when it changed (set behind the cache's back), not a cached copy.
        { slowModeMs: 20_000, previousMs: 5000 },
      ]);
    });

    it('one message per interval across two sockets and REST of one user; others and moderators unaffected', async () => {
      const [member, other, moderator] = [await newUser(t), await newUser(t), await newUser(t)];
      const room = await withMembers(member, other, moderator);
      await makeModerator(room.id, moderator.id);
      await slowMode(admin, room.id, 1).expect(200);
      const [tab1, tab2] = [await open(member), await open(member)];

      const first = await sockSend(tab1, room.id, 'first', 'first-id');
      expect(first.ok).toBe(true);
      const second = await sockSend(tab2, room.id, 'too soon');
      expect(second).toMatchObject({
        ok: false,
        error: {
          code: 'RATE_LIMITED',
          retryAfterMs: expect.any(Number),
          details: { slowModeMs: 1000 },
        },
      });
      if (second.ok) throw new Error('unreachable');
      expect(second.error.message).toMatch(/^Slow mode: /);
      expect(second.error.retryAfterMs).toBeGreaterThan(0);
      expect(second.error.retryAfterMs).toBeLessThanOrEqual(1000);
      const rest = await restSend(member, room.id, 'too soon too').expect(429);
      expect(rest.body.code).toBe('RATE_LIMITED');
      expect(rest.body.message).toMatch(/^Slow mode: /);
      expect(rest.headers['retry-after']).toBe('1');

      // A retry of the stored message is answered with it, not refused.
      const retry = await restSend(member, room.id, 'first', 'first-id').expect(200);
      if (!first.ok) throw new Error('unreachable');
      expect(retry.body.id).toBe(first.data.id);

      // Another member, and a moderator (twice in a row), are not held by this user's slot.
      await restSend(other, room.id, 'me too').expect(201);
      await restSend(moderator, room.id, 'mod 1').expect(201);
      await restSend(moderator, room.id, 'mod 2').expect(201);
      await restSend(admin, room.id, 'admin 1').expect(201);
      await restSend(admin, room.id, 'admin 2').expect(201);

      // After the interval the member may send again (polled, never slept blindly).
      const deadline = Date.now() + 3000;
      let again = await sockSend(tab2, room.id, 'later');
      while (!again.ok && Date.now() < deadline) {
        await sleep(100);
        again = await sockSend(tab2, room.id, 'later');
      }
      expect(again.ok).toBe(true);
      const stored = await db.query<{ content: string }[]>(
        `SELECT content FROM messages WHERE room_id = $1 AND author_id = $2 ORDER BY id`,
        [room.id, member.id],
      );
      expect(stored.map((m) => m.content)).toEqual(['first', 'later']);
    });

    it('a burst over two sockets and REST stores exactly one message per interval', async () => {
      const member = await newUser(t);
      const room = await withMembers(member);
      await slowMode(admin, room.id, 60).expect(200);
      const [tab1, tab2] = [await open(member), await open(member)];
      const results = await Promise.all([
        ...Array.from({ length: 8 }, (_, i) =>
          sockSend(i % 2 ? tab1 : tab2, room.id, `s${i}`).then((a) => a.ok),
        ),
        ...Array.from({ length: 8 }, (_, i) =>
          restSend(member, room.id, `r${i}`).then((r) => r.status === 201),
        ),
      ]);
      expect(results.filter(Boolean)).toHaveLength(1);
    });

    it('a refused send does not take the slot; a send that stores nothing gives it back', async () => {
      const [member, stranger] = [await newUser(t), await newUser(t)];
      const room = await withMembers(member);
      await slowMode(admin, room.id, 60).expect(200);
      // A stranger's send is refused (not a member) and leaves no slot behind.
      await restSend(stranger, room.id, 'hello').expect(403);
      await join(t, stranger, room.id);
      await restSend(stranger, room.id, 'hello').expect(201);
      // A bad reply target stores nothing: the member's corrected send still goes through.
      await t
        .http()
        .post(api(`/rooms/${room.id}/messages`))
        .set(member.auth)
        .send({ clientMsgId: randomUUID(), content: 'x', replyToId: 999999999 })
        .expect(400);
      await restSend(member, room.id, 'corrected').expect(201);
    });

    it('turning it off (0) lets members send at once again', async () => {
      const member = await newUser(t);
      const room = await withMembers(member);
      await slowMode(admin, room.id, 600).expect(200);
      await restSend(member, room.id, 'one').expect(201);
      await restSend(member, room.id, 'two').expect(429);
      await slowMode(admin, room.id, 0).expect(200);
      await restSend(member, room.id, 'two').expect(201);
      await restSend(member, room.id, 'three').expect(201);
    });
  });

  describe('slow mode and personas', () => {
    const personaIn = async (roomId: string) => {
      const handle = `bot_${randomUUID().slice(0, 8)}`;
      const p = await t
        .http()
        .post(api('/personas'))
        .set(admin.auth)
        .send({ handle, displayName: `Bot ${handle}`, systemPrompt: 'Be brief.' })
        .expect(201);
      await t
        .http()
        .post(api(`/rooms/${roomId}/personas/${p.body.id as string}`))
        .set(admin.auth)
        .expect(200);
      return handle;
    };

    it("a persona's replies count against slow mode: the next reply waits for its slot", async () => {
      const [alice, bob] = [await newUser(t), await newUser(t)];
      const room = await withMembers(alice, bob);
      const handle = await personaIn(room.id);
      await slowMode(admin, room.id, 1).expect(200);
      const s = await open(alice);
      const starts: number[] = [];
      s.on('persona.stream.start', () => starts.push(Date.now()));
      // The persona's first slot is claimed after this moment, so its second reply cannot
      // start within the interval from it (without slow mode it would follow the first at once).
      const sentAt = Date.now();
      await restSend(alice, room.id, `@${handle} one`).expect(201);
      await restSend(bob, room.id, `@${handle} two`).expect(201);
      const deadline = Date.now() + 8000;
      while (starts.length < 2 && Date.now() < deadline) await sleep(20);
      expect(starts).toHaveLength(2);
      expect(starts[1] - sentAt).toBeGreaterThanOrEqual(990);
    });

    it('a reply that would wait longer than PERSONA_MAX_REPLY_MS is dropped with a notice', async () => {
      const [alice, bob] = [await newUser(t), await newUser(t)];
      const room = await withMembers(alice, bob);
      const handle = await personaIn(room.id);
      await slowMode(admin, room.id, 60).expect(200);
      const s = await open(alice);
      const seen = record(s, 'persona.stream.end', 'message.created');
      await restSend(alice, room.id, `@${handle} one`).expect(201);
      await restSend(bob, room.id, `@${handle} two`).expect(201);
      const notice = () =>
        seen
          .of('message.created')
          .find((m) => m.role === 'system' && /slow mode/.test(m.content ?? ''));
      const deadline = Date.now() + 8000;
      while (!notice() && Date.now() < deadline) await sleep(20);
      expect(notice()?.content).toMatch(/will not reply: slow mode would hold the reply/);
      expect(seen.of('persona.stream.end')).toHaveLength(1);
    });
  });

  describe('word filter', () => {
    it('block refuses sends (socket and REST) and edits, naming the rule; mask stores the masked text', async () => {
      const member = await newUser(t);
      const room = await withMembers(member);
      const block = await addFilter(admin, `/rooms/${room.id}/filters`, 'Heck', 'block').expect(
        201,
      );
      expect(block.body).toMatchObject({ roomId: room.id, pattern: 'heck', action: 'block' });
      await addFilter(admin, `/rooms/${room.id}/filters`, 'darn*', 'mask').expect(201);
      const s = await open(member);
      const seen = record(s, 'message.created', 'message.updated');

      const refused = await sockSend(s, room.id, 'what the HECK!');
      expect(refused).toMatchObject({
        ok: false,
        error: {
          code: 'CONTENT_BLOCKED',
          details: { filterId: block.body.id, pattern: 'heck', scope: 'room' },
        },
      });
      const refusedRest = await restSend(member, room.id, 'heck.').expect(422);
      expect(refusedRest.body).toMatchObject({
        code: 'CONTENT_BLOCKED',
        details: { pattern: 'heck', scope: 'room' },
      });
      // Whole words: "check" is fine.
      await restSend(member, room.id, 'check this').expect(201);

      const masked = await ok(s, 'message.send', {
        roomId: room.id,
        clientMsgId: randomUUID(),
        content: 'Darned thing, darn it',
      });
      expect(masked.content).toBe('****** thing, **** it');
      const maskedRest = await restSend(member, room.id, 'DARN').expect(201);
      expect(maskedRest.body.content).toBe('****');

      // Edits are screened too.
      const edited = await t
        .http()
        .patch(api(`/messages/${masked.id}`))
        .set(member.auth)
        .send({ content: 'oh heck' })
        .expect(422);
      expect(edited.body.code).toBe('CONTENT_BLOCKED');
      const editAck = await call(s, 'message.edit', { messageId: masked.id, content: 'heck' });
      expect(editAck).toMatchObject({ ok: false, error: { code: 'CONTENT_BLOCKED' } });
      const maskedEdit = await ok(s, 'message.edit', {
        messageId: masked.id,
        content: 'darnit, fine',
      });
      expect(maskedEdit.content).toBe('******, fine');

      // Nobody ever saw the unmasked text.
      const until = Date.now() + 5000;
      while (!seen.of('message.updated').length && Date.now() < until) await sleep(20);
      expect(seen.of('message.updated').map((m) => m.content)).toEqual(['******, fine']);
      expect(seen.of('message.created').length).toBe(3);
      const texts = seen.events.map((e) => (e.payload as { content?: string }).content ?? '');
      expect(texts.join(' ')).not.toMatch(/darn|\bheck/i);
      const stored = await db.query<{ content: string }[]>(
        `SELECT content FROM messages WHERE room_id = $1 AND role = 'user' ORDER BY id`,
        [room.id],
      );
      expect(stored.map((m) => m.content).join(' ')).not.toMatch(/darn|\bheck/i);
    });

    it('a blocked text from someone who may not write: the same answer as any text (no rule leaked)', async () => {
      const [member, stranger] = [await newUser(t), await newUser(t)];
      const hidden = await newRoom(t, admin, { visibility: 'private' });
      await t
        .http()
        .post(api(`/rooms/${hidden.id}/members`))
        .set(admin.auth)
        .send({ userId: member.id })
        .expect(201);
      await addFilter(admin, `/rooms/${hidden.id}/filters`, 'secretword', 'block').expect(201);
      await restSend(member, hidden.id, 'the secretword').expect(422);
      // A stranger: the private room does not exist for them, whatever they send.
      expect((await restSend(stranger, hidden.id, 'the secretword').expect(404)).body.code).toBe(
        'NOT_FOUND',
      );
      const s = await open(stranger);
      expect(await sockSend(s, hidden.id, 'the secretword')).toMatchObject({
        ok: false,
        error: { code: 'NOT_FOUND' },
      });
      // A public room's non-member is told to join, not which rule the text broke.
      const publicRoom = await withMembers(member);
      await addFilter(admin, `/rooms/${publicRoom.id}/filters`, 'secretword', 'block').expect(201);
      expect(
        (await restSend(stranger, publicRoom.id, 'the secretword').expect(403)).body.code,
      ).toBe('FORBIDDEN');
    });

    it('a rule takes effect at once when added and stops when removed', async () => {
      const member = await newUser(t);
      const room = await withMembers(member);
      const word = uniqueName('zonk');
      const before = await restSend(member, room.id, `a ${word}`, 'pre-rule').expect(201);
      const rule = await addFilter(admin, `/rooms/${room.id}/filters`, word, 'block').expect(201);
      await restSend(member, room.id, `a ${word}`).expect(422);
      // A retry of what was stored before the rule still gets its first answer.
      const retry = await restSend(member, room.id, `a ${word}`, 'pre-rule').expect(200);
      expect(retry.body.id).toBe(before.body.id);
      await t
        .http()
        .delete(api(`/rooms/${room.id}/filters/${rule.body.id}`))
        .set(admin.auth)
        .expect(204);
      await restSend(member, room.id, `a ${word}`).expect(201);
      await t
        .http()
        .delete(api(`/rooms/${room.id}/filters/${rule.body.id}`))
        .set(admin.auth)
        .expect(404);
    });

    it('global rules apply in every room; a room rule only in its room', async () => {
      const member = await newUser(t);
      const [a, b] = [await withMembers(member), await withMembers(member)];
      const [g, r] = [uniqueName('gword'), uniqueName('rword')];
      await restSend(member, b.id, 'warm the cache').expect(201);
      const global = await addFilter(admin, '/admin/filters', g, 'block').expect(201);
      expect(global.body.roomId).toBeNull();
      await addFilter(admin, `/rooms/${a.id}/filters`, r, 'block').expect(201);
      const inA = await restSend(member, a.id, `x ${g}`).expect(422);
      expect(inA.body.details).toMatchObject({ scope: 'global', filterId: global.body.id });
      await restSend(member, b.id, `x ${g}`).expect(422);
      await restSend(member, a.id, `x ${r}`).expect(422);
      await restSend(member, b.id, `x ${r}`).expect(201);
      // In direct rooms too.
      const other = await newUser(t);
      const dm = await t
        .http()
        .post(api(`/direct/${other.id}`))
        .set(member.auth)
        .expect((res) => expect([200, 201]).toContain(res.status));
      await restSend(member, (dm.body as { id: string }).id, `x ${g}`).expect(422);
      const list = await t.http().get(api('/admin/filters')).set(admin.auth).expect(200);
      expect(list.body.items.map((f: { id: string }) => f.id)).toContain(global.body.id);
      await t
        .http()
        .delete(api(`/admin/filters/${global.body.id}`))
        .set(admin.auth)
        .expect(204);
      await restSend(member, b.id, `x ${g}`).expect(201);
    });

    it('only moderators manage a room’s rules, only admins the global ones', async () => {
      const [member, moderator, modB] = [await newUser(t), await newUser(t), await newUser(t)];
      const room = await withMembers(member, moderator, modB);
      const other = await withMembers(modB);
      await makeModerator(room.id, moderator.id);
      await makeModerator(other.id, modB.id);
      const path = `/rooms/${room.id}/filters`;
      await addFilter(member, path, 'nope', 'block').expect(403);
      await addFilter(modB, path, 'nope', 'block').expect(403);
      await t.http().get(api(path)).set(member.auth).expect(403);
      const added = await addFilter(moderator, path, 'fine', 'mask').expect(201);
      const list = await t.http().get(api(path)).set(moderator.auth).expect(200);
      expect(list.body).toEqual({ items: [added.body], max: 4 });
      await t
        .http()
        .delete(api(`${path}/${added.body.id}`))
        .set(member.auth)
        .expect(403);
      // A rule of room A cannot be removed through room B.
      await t
        .http()
        .delete(api(`/rooms/${other.id}/filters/${added.body.id}`))
        .set(modB.auth)
        .expect(404);
      await addFilter(moderator, '/admin/filters', 'nope', 'block').expect(403);
      await t.http().get(api('/admin/filters')).set(moderator.auth).expect(403);
      const hidden = await newRoom(t, admin, { visibility: 'private' });
      await addFilter(member, `/rooms/${hidden.id}/filters`, 'nope', 'block').expect(404);
    });

    it('validates patterns, refuses duplicates, and holds the per-room maximum under concurrency', async () => {
      const room = await withMembers();
      const path = `/rooms/${room.id}/filters`;
      const bad = await addFilter(admin, path, 'a*b*c', 'block').expect(400);
      expect(bad.body.details.pattern[0]).toMatch(/one \*/);
      await addFilter(admin, path, '!!!', 'block').expect(400);
      await addFilter(admin, path, 'word', 'delete' as 'block').expect(400);
      await addFilter(admin, path, 'Twice', 'block').expect(201);
      const dup = await addFilter(admin, path, ' twice ', 'mask').expect(409);
      expect(dup.body.code).toBe('CONFLICT');
      const statuses = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          addFilter(admin, path, `w${i}x`, 'mask').then((r) => r.status),
        ),
      );
      expect(statuses.filter((s) => s === 201)).toHaveLength(3);
      expect(statuses.filter((s) => s === 409)).toHaveLength(5);
      const list = await t.http().get(api(path)).set(admin.auth).expect(200);
      expect(list.body.items).toHaveLength(4);
    });

    it('adding and removing rules is audited with who, what and where', async () => {
      const room = await withMembers();
      const added = await addFilter(admin, `/rooms/${room.id}/filters`, 'audited', 'mask').expect(
        201,
      );
      await t
        .http()
        .delete(api(`/rooms/${room.id}/filters/${added.body.id}`))
        .set(admin.auth)
        .expect(204);
      const g = await addFilter(admin, '/admin/filters', uniqueName('aud'), 'block').expect(201);
      await t
        .http()
        .delete(api(`/admin/filters/${g.body.id}`))
        .set(admin.auth)
        .expect(204);
      expect(await auditRows('filter.add', added.body.id)).toEqual([
        {
          actor_id: admin.id,
          target_id: added.body.id,
          room_id: room.id,
          details: { pattern: 'audited', action: 'mask', scope: 'room' },
        },
      ]);
      expect(await auditRows('filter.remove', added.body.id)).toHaveLength(1);
      expect(await auditRows('filter.add', g.body.id)).toMatchObject([
        { room_id: null, details: { scope: 'global', action: 'block' } },
      ]);
      expect(await auditRows('filter.remove', g.body.id)).toHaveLength(1);
    });
  });
});
