import { randomBytes } from 'node:crypto';
import type { MessageDto } from '../src/messages/dto/message.dto';
import { startApp, type TestApp } from './support/app';
import { testEndpoint } from './support/database';
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
import { FakeLlm } from './support/fake-llm';
import { type ClientSocket, connect, next, ok, sleep } from './support/socket';

const api = (path: string) => `/api/v1${path}`;

async function unreadMentions(t: TestApp, user: TestUser, roomId: string): Promise<number> {
  const res = await t.http().get(api('/rooms?limit=200')).set(user.auth).expect(200);
  const room = (res.body.items as { id: string; unreadMentions: number }[]).find(
    (r) => r.id === roomId,
  );
  return room!.unreadMentions;
}

const names = (m: MessageDto) => m.mentions.map((x) => x.username);

describe('mentions (e2e)', () => {
  let t: TestApp;
  let fake: FakeLlm;
  let admin: TestUser;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let eve: TestUser;
  let room: TestRoom;
  const sockets: ClientSocket[] = [];

  beforeAll(async () => {
    fake = await FakeLlm.start();
    t = await startApp({
      ...ADMIN_ENV,
      ...NO_WRITE_LIMITS,
      LLM_BASE_URL: fake.url,
      LLM_MODEL: 'default-model',
      PERSONA_TRIGGER_RATE_LIMIT: '1000',
    });
    admin = await loginAdmin(t);
    [alice, bob, carol, eve] = [
      await newUser(t, { username: `Alice_${randomBytes(3).toString('hex')}` }),
      await newUser(t, { username: `bob.${randomBytes(3).toString('hex')}` }),
      await newUser(t),
      await newUser(t),
    ];
    room = await newRoom(t, admin);
    for (const u of [alice, bob, carol]) await join(t, u, room.id);
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await t.close();
    await fake.close();
  });

  it('parses @username next to punctuation, in any case; unknown names, non-members and e-mails stay plain', async () => {
    const before = await unreadMentions(t, bob, room.id);
    const m = await post(
      t,
      alice,
      room.id,
      `hi (@${bob.username.toUpperCase()}), @${carol.username}! @nobody_here @${eve.username} ` +
        `mail x@${carol.username}.com and @${bob.username}.`,
    );
    expect(m.mentions).toEqual([
      { userId: bob.id, username: bob.username },
      { userId: carol.id, username: carol.username },
    ]);
    expect(m.mentionsHere).toBeUndefined();
    expect(m.mentionsRoom).toBeUndefined();
    // Stored: history shows the same, and the mentioned members count it.
    const page = await t
      .http()
      .get(api(`/rooms/${room.id}/messages`))
      .set(bob.auth)
      .expect(200);
    const stored = (page.body.items as MessageDto[]).find((x) => x.id === m.id)!;
    expect(stored.mentions).toEqual(m.mentions);
    expect(await unreadMentions(t, bob, room.id)).toBe(before + 1);
    expect(await unreadMentions(t, alice, room.id)).toBe(0);
  });

  it('a text the client calls a mention is not one unless the server parses it', async () => {
    const res = await t
      .http()
      .post(api(`/rooms/${room.id}/messages`))
      .set(alice.auth)
      .send({
        clientMsgId: randomBytes(8).toString('hex'),
        content: 'no names',
        mentions: [{ userId: bob.id, username: bob.username }],
      });
    // Unknown body fields are refused (whitelist), never taken.
    expect(res.status).toBe(400);
  });

  it('unreadMentions: after my read marker, not deleted, not my own', async () => {
    const r = await newRoom(t, admin);
    for (const u of [alice, bob]) await join(t, u, r.id);
    const m1 = await post(t, alice, r.id, `@${bob.username} one`);
    const m2 = await post(t, alice, r.id, `@${bob.username} two`);
    await post(t, bob, r.id, `@${bob.username} talking to myself`);
    expect(await unreadMentions(t, bob, r.id)).toBe(2);
    await t
      .http()
      .delete(api(`/messages/${m2.id}`))
      .set(alice.auth)
      .expect(204);
    expect(await unreadMentions(t, bob, r.id)).toBe(1);
    const read = await t
      .http()
      .put(api(`/rooms/${r.id}/read`))
      .set(bob.auth)
      .send({ messageId: m1.id })
      .expect(200);
    expect(read.body).toMatchObject({ lastReadMessageId: m1.id, unreadMentions: 0 });
    expect(await unreadMentions(t, bob, r.id)).toBe(0);
    // Not a member: 0 (public rooms are listed for everyone).
    expect(await unreadMentions(t, eve, r.id)).toBe(0);
  });

  it('edits add and remove mentions (rows and display), broadcast in message.updated', async () => {
    const r = await newRoom(t, admin);
    for (const u of [alice, bob, carol]) await join(t, u, r.id);
    const s = await connect(t, carol.accessToken);
    sockets.push(s);
    await ok(s, 'room.join', { roomId: r.id });
    const m = await post(t, alice, r.id, `hey @${bob.username}`);
    expect([await unreadMentions(t, bob, r.id), await unreadMentions(t, carol, r.id)]).toEqual([
      1, 0,
    ]);
    const updated = next(s, 'message.updated', (x) => x.id === m.id);
    const edited = await t
      .http()
      .patch(api(`/messages/${m.id}`))
      .set(alice.auth)
      .send({ content: `hey @${carol.username}` })
      .expect(200);
    expect(names(edited.body as MessageDto)).toEqual([carol.username]);
    expect(names(await updated)).toEqual([carol.username]);
    expect([await unreadMentions(t, bob, r.id), await unreadMentions(t, carol, r.id)]).toEqual([
      0, 1,
    ]);
    // Over the socket too, and an edit to no mention at all clears them.
    const cleared = await ok(s, 'message.edit', { messageId: m.id, content: 'hey all' }).catch(
      () => null,
    ); // carol is not the author: refused
    expect(cleared).toBeNull();
    const sa = await connect(t, alice.accessToken);
    sockets.push(sa);
    const plain = await ok(sa, 'message.edit', { messageId: m.id, content: 'hey all' });
    expect(plain.mentions).toEqual([]);
    expect(await unreadMentions(t, carol, r.id)).toBe(0);
  });

  it('@here mentions the members online now (not the author), for anyone', async () => {
    const r = await newRoom(t, admin);
    const frank = await newUser(t); // never connects
    for (const u of [alice, bob, frank]) await join(t, u, r.id);
    const s = await connect(t, bob.accessToken); // bob online, frank not
    sockets.push(s);
    const created = next(s, 'message.created', (x) => x.roomId === r.id);
    await ok(s, 'room.join', { roomId: r.id });
    const m = await post(t, alice, r.id, '@here, standup!');
    expect(m.mentionsHere).toBe(true);
    expect(m.mentions).toEqual([]);
    expect((await created).mentionsHere).toBe(true);
    expect(await unreadMentions(t, bob, r.id)).toBe(1);
    expect(await unreadMentions(t, frank, r.id)).toBe(0);
    expect(await unreadMentions(t, alice, r.id)).toBe(0);
    // An edit keeping @here keeps who was online at the send.
    s.close();
    await t
      .http()
      .patch(api(`/messages/${m.id}`))
      .set(alice.auth)
      .send({ content: '@here, standup now!' })
      .expect(200);
    expect(await unreadMentions(t, bob, r.id)).toBe(1);
  });

  it('@room: every member for moderators and admins; plain text for others', async () => {
    const r = await newRoom(t, admin);
    for (const u of [alice, bob, carol]) await join(t, u, r.id);
    const plain = await post(t, alice, r.id, 'hello @room');
    expect(plain.mentionsRoom).toBeUndefined();
    expect(await unreadMentions(t, carol, r.id)).toBe(0);

    const loud = await post(t, admin, r.id, 'hello @ROOM.');
    expect(loud.mentionsRoom).toBe(true);
    for (const u of [alice, bob, carol]) expect(await unreadMentions(t, u, r.id)).toBe(1);

    // A room moderator may too.
    await t
      .http()
      .put(api(`/rooms/${r.id}/members/${alice.id}/role`))
      .set(admin.auth)
      .send({ role: 'moderator' })
      .expect(200);
    const mod = await post(t, alice, r.id, '@room please read');
    expect(mod.mentionsRoom).toBe(true);
    expect(await unreadMentions(t, carol, r.id)).toBe(2);
    expect(await unreadMentions(t, alice, r.id)).toBe(1); // the admin's, not her own
  });

  it('membership changes reach the names in memory: a newcomer at once, a leaver no more', async () => {
    const r = await newRoom(t, admin);
    for (const u of [alice, bob]) await join(t, u, r.id);
    const dave = await newUser(t);
    // The room's names are now in memory.
    expect(names(await post(t, alice, r.id, `@${bob.username} @${dave.username}`))).toEqual([
      bob.username,
    ]);
    await join(t, dave, r.id);
    expect(names(await post(t, alice, r.id, `@${dave.username} welcome`))).toEqual([dave.username]);
    await t
      .http()
      .post(api(`/rooms/${r.id}/leave`))
      .set(dave.auth)
      .expect(204);
    expect(names(await post(t, alice, r.id, `@${dave.username} bye`))).toEqual([]);
    // Removed by an admin, and banned: likewise.
    await join(t, dave, r.id);
    expect(names(await post(t, alice, r.id, `@${dave.username} back`))).toEqual([dave.username]);
    await t
      .http()
      .post(api(`/rooms/${r.id}/bans`))
      .set(admin.auth)
      .send({ userId: dave.id, reason: 'test' })
      .expect((res) => expect([200, 201]).toContain(res.status));
    expect(names(await post(t, alice, r.id, `@${dave.username} gone`))).toEqual([]);
  });

  it('mentioning a persona still triggers it (and is no user mention)', async () => {
    const handle = `sage_${randomBytes(3).toString('hex')}`;
    const persona = await t
      .http()
      .post(api('/personas'))
      .set(admin.auth)
      .send({ handle, displayName: 'Sage', systemPrompt: 'You are wise.' })
      .expect(201);
    const r = await newRoom(t, admin);
    await join(t, alice, r.id);
    await t
      .http()
      .post(api(`/rooms/${r.id}/personas/${persona.body.id}`))
      .set(admin.auth)
      .expect(200);
    fake.respond = () => ({ chunks: ['Hello', ' there'] });
    const asked = fake.requests.length;
    const m = await post(t, alice, r.id, `@${handle}, what is a star?`);
    expect(m.mentions).toEqual([]);
    const deadline = Date.now() + 5000;
    while (fake.requests.length === asked && Date.now() < deadline) await sleep(20);
    expect(fake.requests.length).toBeGreaterThan(asked);
  });
});

const SHARED = Boolean(process.env.TEST_REDIS_URL && process.env.TEST_DATABASE_URL);
(SHARED ? describe : describe.skip)('mentions across two instances (Redis)', () => {
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    const endpoint = await testEndpoint();
    const env = { ...ADMIN_ENV, ...NO_WRITE_LIMITS };
    a = await startApp(env, endpoint);
    b = await startApp(env, endpoint);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  it('a user who joins through A can be mentioned in a message sent through B within a second', async () => {
    const admin = await loginAdmin(a);
    const [alice, dave] = [await newUser(a), await newUser(a)];
    const r = await newRoom(a, admin);
    await join(a, alice, r.id);
    // B holds the room's names (without dave) in memory.
    expect(names(await post(b, alice, r.id, `@${dave.username}?`))).toEqual([]);
    await join(a, dave, r.id);
    const t0 = Date.now();
    let seen: string[] = [];
    while (Date.now() - t0 < 1000) {
      seen = names(await post(b, alice, r.id, `@${dave.username} hi`));
      if (seen.length) break;
      await sleep(20);
    }
    expect(seen).toEqual([dave.username]);
    // And one who leaves through A is no longer mentioned through B.
    await a
      .http()
      .post(api(`/rooms/${r.id}/leave`))
      .set(dave.auth)
      .expect(204);
    const t1 = Date.now();
    while (Date.now() - t1 < 1000) {
      seen = names(await post(b, alice, r.id, `@${dave.username} bye`));
      if (!seen.length) break;
      await sleep(20);
    }
    expect(seen).toEqual([]);
  });
});
