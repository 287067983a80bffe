import { randomUUID } from 'node:crypto';
import type { PersonaStreamSnapshot, PersonaStreamEnd, TypingEvent } from '../src/chat/contract';
import { startApp, TestApp } from './support/app';
import {
  ADMIN_ENV,
  join,
  loginAdmin,
  newRoom,
  newUser,
  NO_WRITE_LIMITS,
  TestUser,
} from './support/factories';
import { FakeLlm, sleep } from './support/fake-llm';
import { fullText, longReply, reconstruct } from './support/persona-streams';
import { type ClientSocket, connect, next, ok, record } from './support/socket';

describe('persona streams: snapshot and resumption (e2e)', () => {
  let t: TestApp;
  let fake: FakeLlm;
  let admin: TestUser;
  let alice: TestUser;
  let bob: TestUser;
  const sockets: ClientSocket[] = [];

  const open = async (user: TestUser) => {
    const s = await connect(t, user.accessToken);
    sockets.push(s);
    return s;
  };
  const roomWithPersona = async () => {
    const handle = `s_${randomUUID().slice(0, 8)}`;
    const persona = (
      await t
        .http()
        .post('/api/v1/personas')
        .set(admin.auth)
        .send({ handle, displayName: 'Streamer' })
        .expect(201)
    ).body as { id: string; handle: string };
    const room = await newRoom(t, admin);
    await join(t, alice, room.id);
    await join(t, bob, room.id);
    await t
      .http()
      .post(`/api/v1/rooms/${room.id}/personas/${persona.id}`)
      .set(admin.auth)
      .expect(200);
    return { room, persona };
  };
  const ask = (s: ClientSocket, roomId: string, handle: string) =>
    ok(s, 'message.send', { roomId, clientMsgId: randomUUID(), content: `@${handle} go` });

  beforeAll(async () => {
    fake = await FakeLlm.start();
    t = await startApp({
      ...ADMIN_ENV,
      ...NO_WRITE_LIMITS,
      LLM_BASE_URL: fake.url,
      PERSONA_STREAM_FLUSH_MS: '20',
      PERSONA_TRIGGER_RATE_LIMIT: '1000',
    });
    admin = await loginAdmin(t);
    [alice, bob] = [await newUser(t), await newUser(t)];
  });
  afterEach(() => {
    for (const s of sockets.splice(0)) s.close();
  });
  afterAll(async () => {
    await t.close();
    await fake.close();
  });

  it('a client opening the room mid-reply gets the text so far and the deltas that follow: exactly the final text', async () => {
    const { room, persona } = await roomWithPersona();
    const a = await open(alice);
    fake.enqueue(longReply(80, 30));
    const firstDelta = next(a, 'persona.stream.delta', (d) => d.roomId === room.id);
    const aliceEnd = next(a, 'persona.stream.end', (e) => e.roomId === room.id);
    await ask(a, room.id, persona.handle);
    await firstDelta;
    await sleep(150);

    // bob (a member: subscribed at the handshake) and carol (joins the room now) arrive.
    const b = await open(bob);
    const bobEvents = record(b, 'persona.stream.delta', 'persona.stream.end');
    const bobJoin = await ok(b, 'room.join', { roomId: room.id });
    const carol = await newUser(t);
    const c = await open(carol);
    const carolEvents = record(c, 'persona.stream.delta', 'persona.stream.end');
    const carolJoin = await ok(c, 'room.join', { roomId: room.id });

    for (const [joined, events] of [
      [bobJoin, bobEvents],
      [carolJoin, carolEvents],
    ] as const) {
      expect(joined.streams).toHaveLength(1);
      const [snap] = joined.streams;
      expect(snap).toMatchObject({ roomId: room.id, personaId: persona.id });
      expect(snap.nextSeq).toBeGreaterThan(0);
      expect(snap.text.length).toBeGreaterThan(0);
      expect(fullText(80).startsWith(snap.text)).toBe(true);
      const end = await (async () => {
        for (;;) {
          const e = events.of('persona.stream.end').find((x) => x.messageId === snap.messageId);
          if (e) return e;
          await sleep(20);
        }
      })();
      expect(end.finishReason).toBe('stop');
      expect(reconstruct(snap, events.of('persona.stream.delta'))).toBe(end.message!.content);
    }
    expect((await aliceEnd).message!.content).toBe(fullText(80));
    // Once ended, nothing is in progress.
    expect((await ok(b, 'room.join', { roomId: room.id })).streams).toEqual([]);
  });

  it('clients opening the room at many moments of one reply all reconstruct it exactly', async () => {
    const { room, persona } = await roomWithPersona();
    const a = await open(alice);
    fake.enqueue(longReply(100, 25));
    const started = next(a, 'persona.stream.start', (e) => e.roomId === room.id);
    const ended = next(a, 'persona.stream.end', (e) => e.roomId === room.id);
    await ask(a, room.id, persona.handle);
    await started;
    const views: { snap: PersonaStreamSnapshot; events: ReturnType<typeof record> }[] = [];
    for (let i = 0; i < 8; i++) {
      const s = await open(bob);
      const events = record(s, 'persona.stream.delta');
      const joined = await ok(s, 'room.join', { roomId: room.id });
      if (joined.streams[0]) views.push({ snap: joined.streams[0], events });
      await sleep(97);
    }
    const end = await ended;
    await sleep(100);
    expect(views.length).toBeGreaterThanOrEqual(4);
    for (const v of views) {
      expect(reconstruct(v.snap, v.events.of('persona.stream.delta'))).toBe(end.message!.content);
    }
  });

  it('a client that reconnects mid-reply and catches up with `since` reconstructs it exactly', async () => {
    const { room, persona } = await roomWithPersona();
    const a = await open(alice);
    const first = await ok(a, 'room.join', { roomId: room.id });
    expect(first.streams).toEqual([]);
    fake.enqueue(longReply(60, 30));
    const delta = next(a, 'persona.stream.delta', (d) => d.roomId === room.id);
    await ask(a, room.id, persona.handle);
    await delta;
    a.close();
    await sleep(200);

    const again = await open(alice);
    const events = record(again, 'persona.stream.delta', 'persona.stream.end');
    const caught = await ok(again, 'room.join', { roomId: room.id, since: first.cursor });
    // The question is in the catch-up; the reply is not saved yet: it is in `streams`.
    expect(caught.messages.map((m) => m.role)).toEqual(['user']);
    expect(caught.streams).toHaveLength(1);
    const [snap] = caught.streams;
    const end = await next(again, 'persona.stream.end', (e) => e.messageId === snap.messageId);
    expect(reconstruct(snap, events.of('persona.stream.delta'))).toBe(end.message!.content);
    expect(end.message!.content).toBe(fullText(60));
  });

  it("shows the persona like a typist: 'thinking' before the first token, 'writing', then off", async () => {
    const { room, persona } = await roomWithPersona();
    const a = await open(alice);
    const b = await open(bob);
    const typing = record(b, 'typing');
    fake.enqueue({ chunks: ['One ', 'two.'], delayMs: 150 });
    const end = next(b, 'persona.stream.end', (e) => e.roomId === room.id);
    await ask(a, room.id, persona.handle);
    await end;
    await sleep(50);
    const states = typing
      .of('typing')
      .filter((e: TypingEvent) => e.roomId === room.id)
      .map(({ userId, username, typing: on, persona: p, state }) => ({
        userId,
        username,
        typing: on,
        persona: p,
        state,
      }));
    const who = { userId: persona.id, username: persona.handle, persona: true };
    expect(states).toEqual([
      { ...who, typing: true, state: 'thinking' },
      { ...who, typing: true, state: 'writing' },
      { ...who, typing: false, state: undefined },
    ]);
  });

  it('a reply cut short by a stop from another tab ends for every viewer, snapshot included', async () => {
    const { room, persona } = await roomWithPersona();
    const a = await open(alice);
    fake.enqueue(longReply(80, 30));
    const delta = next(a, 'persona.stream.delta', (d) => d.roomId === room.id);
    await ask(a, room.id, persona.handle);
    const { messageId } = await delta;
    const tab2 = await open(alice);
    const events = record(tab2, 'persona.stream.delta');
    const joined = await ok(tab2, 'room.join', { roomId: room.id });
    const end: Promise<PersonaStreamEnd> = next(
      tab2,
      'persona.stream.end',
      (e) => e.messageId === messageId,
    );
    await sleep(100);
    await ok(tab2, 'persona.cancel', { messageId });
    const ended = await end;
    expect(ended.finishReason).toBe('cancelled');
    expect(reconstruct(joined.streams[0], events.of('persona.stream.delta'))).toBe(
      ended.message!.content,
    );
    expect((await ok(tab2, 'room.join', { roomId: room.id })).streams).toEqual([]);
  });
});
