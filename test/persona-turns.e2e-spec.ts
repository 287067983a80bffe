import { EventEmitter2 } from '@nestjs/event-emitter';
import { randomUUID } from 'node:crypto';
import type { MessageDto } from '../src/messages/dto/message.dto';
import { autoSpeakers } from '../src/personas/turn-selector';
import { startApp, TestApp } from './support/app';
import {
  ADMIN_ENV,
  join,
  loginAdmin,
  newRoom,
  newUser,
  NO_WRITE_LIMITS,
  send,
  TestRoom,
  TestUser,
} from './support/factories';
import { type ChatRequest, FakeLlm, type Script, sleep } from './support/fake-llm';

/**
 * Several personas in one room (docs/personas.md, "Turn-taking"): each policy's speakers for a
 * seeded scenario, personas answering each other, and the loop guards that stop them, against
 * the fake model server (deterministic replies; the director's answers are scripted).
 */

const api = (path: string) => `/api/v1${path}`;

interface Persona {
  id: string;
  handle: string;
  displayName: string;
  talkativeness: number;
}

/** How long "nothing more happens" is watched for. */
const QUIET_MS = 400;

describe('persona turn-taking (e2e)', () => {
  let t: TestApp;
  let fake: FakeLlm;
  let admin: TestUser;
  let alice: TestUser;
  let bob: TestUser;
  const created: MessageDto[] = [];
  /** What each persona says (by handle); default: "<handle> speaking". */
  const says = new Map<string, string>();
  /** How slowly each persona writes: the pause before each of its two chunks (ms). */
  const delays = new Map<string, number>();
  /** The director's next answers (a script each), in order; empty: "none". */
  const director: Script[] = [];
  const directorRequests: ChatRequest[] = [];

  const createPersona = async (talkativeness = 0.5, style = ''): Promise<Persona> => {
    const handle = `t_${randomUUID().slice(0, 8)}`;
    const res = await t
      .http()
      .post(api('/personas'))
      .set(admin.auth)
      .send({ handle, displayName: handle.toUpperCase(), talkativeness, style })
      .expect(201);
    return res.body as Persona;
  };
  /** A public room with alice and bob, the personas attached in this order. */
  const roomWith = async (...personas: Persona[]): Promise<TestRoom> => {
    const room = await newRoom(t, admin);
    await join(t, alice, room.id);
    await join(t, bob, room.id);
    for (const p of personas) {
      await t
        .http()
        .post(api(`/rooms/${room.id}/personas/${p.id}`))
        .set(admin.auth)
        .expect(200);
    }
    return room;
  };
  const setPolicy = async (roomId: string, body: object, as = admin, status = 200) =>
    (
      await t
        .http()
        .put(api(`/rooms/${roomId}/persona-policy`))
        .set(as.auth)
        .send(body)
        .expect(status)
    ).body as Record<string, unknown>;
  const replies = (roomId: string) =>
    created.filter((m) => m.roomId === roomId && m.role === 'assistant');
  /** Handles of the personas that replied in the room, in order. */
  const speakers = (roomId: string) => replies(roomId).map((m) => m.author!.handle!);
  const notices = (roomId: string) =>
    created
      .filter((m) => m.roomId === roomId && m.role === 'system')
      .map((m) => m.content ?? '')
      .filter((c) => c.includes('loop guard'));
  /** Waits for `n` replies in the room in all, then makes sure no more come. */
  const settle = async (roomId: string, n: number): Promise<string[]> => {
    const deadline = Date.now() + 8000;
    while (replies(roomId).length < n) {
      if (Date.now() > deadline)
        throw new Error(`expected ${n} replies, got ${speakers(roomId).join(',')}`);
      await sleep(10);
    }
    await sleep(QUIET_MS);
    return speakers(roomId);
  };

  beforeAll(async () => {
    fake = await FakeLlm.start();
    fake.respond = (req) => {
      if (req.stream !== true) {
        directorRequests.push(req);
        return director.shift() ?? { chunks: ['none'] };
      }
      const handle = /\(@([a-z0-9_]+)\)/.exec(req.messages[0].content)![1];
      const text = says.get(handle) ?? `${handle} speaking`;
      return { chunks: [text.slice(0, 3), text.slice(3)], delayMs: delays.get(handle) };
    };
    t = await startApp({
      ...ADMIN_ENV,
      ...NO_WRITE_LIMITS,
      RATE_LIMIT_MODERATE: '100000',
      LLM_BASE_URL: fake.url,
      LLM_TIMEOUT_MS: '2000',
      PERSONA_STREAM_FLUSH_MS: '20',
      PERSONA_TRIGGER_RATE_LIMIT: '100000',
      PERSONA_COOLDOWN_MS: '0',
    });
    t.app
      .get(EventEmitter2)
      .on('message.created', ({ message }: { message: MessageDto }) => created.push(message));
    admin = await loginAdmin(t);
    [alice, bob] = [await newUser(t), await newUser(t)];
  });
  afterAll(async () => {
    await t?.close();
    await fake?.close();
  });

  describe('policies', () => {
    it('mention (the default): only @handles call, and replies call nobody without cross-talk', async () => {
      const [a, b] = [await createPersona(), await createPersona()];
      says.set(b.handle, `over to @${a.handle}`);
      const room = await roomWith(a, b);
      const policy = await setPolicy(room.id, {}, admin);
      expect(policy).toMatchObject({ policy: 'mention', crossTalk: false, maxSpeakers: 1 });

      await send(t, alice, room.id, 'hello everyone');
      expect(await settle(room.id, 0)).toEqual([]);
      await send(t, alice, room.id, `@${b.handle} hi`);
      expect(await settle(room.id, 1)).toEqual([b.handle]);

      // With cross-talk, b's mention of a calls a; a mentions nobody, so it ends there.
      await setPolicy(room.id, { crossTalk: true, cooldownMs: 0 });
      await send(t, alice, room.id, `@${b.handle} again`);
      expect(await settle(room.id, 3)).toEqual([b.handle, b.handle, a.handle]);
      expect(notices(room.id)).toEqual([]);
      // a's reply answers b's.
      const [, second, third] = replies(room.id);
      expect(third.replyToId).toBe(second.id);
    });

    it('round-robin: unmentioned messages go round in the order personas were added', async () => {
      const [a, b, c] = [await createPersona(), await createPersona(), await createPersona()];
      const room = await roomWith(a, b, c);
      await setPolicy(room.id, { policy: 'round-robin' });
      for (let i = 1; i <= 4; i++) {
        await send(t, alice, room.id, `question ${i}`);
        await settle(room.id, i);
      }
      expect(speakers(room.id)).toEqual([a.handle, b.handle, c.handle, a.handle]);
      // An @handle calls that persona and does not move the turn; the next goes on from it.
      await send(t, bob, room.id, `@${c.handle} you please`);
      await settle(room.id, 5);
      await send(t, bob, room.id, 'and now?');
      expect(await settle(room.id, 6)).toEqual([
        a.handle,
        b.handle,
        c.handle,
        a.handle,
        c.handle,
        b.handle,
      ]);
    });

    it('auto: the seeded talkativeness draw, replayed exactly from the seed and message ids', async () => {
      const personas = [
        await createPersona(0.5),
        await createPersona(0.25),
        await createPersona(0.75),
      ];
      const room = await roomWith(...personas);
      const set = await setPolicy(room.id, { policy: 'auto', seed: 1234 });
      expect(set).toMatchObject({ policy: 'auto', seed: 1234 });
      const expected: string[] = [];
      for (let i = 1; i <= 8; i++) {
        const sent = await send(t, alice, room.id, `musing ${i}`);
        expected.push(...autoSpeakers(personas, 1234, sent.id, 1, true).map((p) => p.handle));
        await settle(room.id, expected.length);
      }
      expect(expected).toHaveLength(8); // one speaker per message (maxSpeakers 1, fallback)
      expect(new Set(expected).size).toBeGreaterThan(1);
      expect(speakers(room.id)).toEqual(expected);
    });

    it('auto: talkativeness 1 always speaks and 0 never; mentions come first; maxSpeakers', async () => {
      const [loud, shy, quiet] = [
        await createPersona(1),
        await createPersona(0),
        await createPersona(0),
      ];
      const room = await roomWith(shy, loud, quiet);
      await setPolicy(room.id, { policy: 'auto', seed: 7 });
      for (let i = 1; i <= 3; i++) {
        await send(t, alice, room.id, `chat ${i}`);
        await settle(room.id, i);
      }
      await send(t, alice, room.id, `@${quiet.handle} your turn`);
      expect(await settle(room.id, 4)).toEqual([
        loud.handle,
        loud.handle,
        loud.handle,
        quiet.handle,
      ]);

      const [x, y, z] = [await createPersona(1), await createPersona(1), await createPersona(1)];
      const busy = await roomWith(x, y, z);
      await setPolicy(busy.id, { policy: 'auto', maxSpeakers: 2 });
      await send(t, alice, busy.id, 'anyone?');
      expect((await settle(busy.id, 2)).length).toBe(2);
    });

    it('director: the model names the next speaker; none, junk or an error call nobody', async () => {
      const a = await createPersona(0.5, 'Knows astronomy.');
      const b = await createPersona(0.5, 'Knows cooking.');
      const room = await roomWith(a, b);
      await setPolicy(room.id, { policy: 'director' });
      const asked = directorRequests.length;

      director.push({ chunks: [`@${b.handle.toUpperCase()}`] });
      await send(t, alice, room.id, 'how long do I boil an egg?');
      expect(await settle(room.id, 1)).toEqual([b.handle]);
      const req = directorRequests[asked];
      expect(req.stream).not.toBe(true);
      expect(req.messages[0].content).toContain(
        `- @${a.handle} (${a.displayName}): Knows astronomy.`,
      );
      expect(req.messages[0].content).toContain(
        `- @${b.handle} (${b.displayName}): Knows cooking.`,
      );
      expect(req.messages[1].content).toContain(`${alice.username}: how long do I boil an egg?`);

      director.push({ chunks: ['none'] }, { chunks: ['@mallory'] }, { status: 500 });
      for (const text of ['thanks', 'ok', 'bye']) await send(t, alice, room.id, text);
      expect(await settle(room.id, 1)).toEqual([b.handle]);
      expect(directorRequests.length).toBe(asked + 4);

      // A mention needs no director.
      await send(t, alice, room.id, `@${a.handle} what is a comet?`);
      expect(await settle(room.id, 2)).toEqual([b.handle, a.handle]);
      expect(directorRequests.length).toBe(asked + 4);
    });

    it('director: only a lone handle is an answer (think blocks dropped); a cut or empty answer is none', async () => {
      const [a, b] = [await createPersona(), await createPersona()];
      const room = await roomWith(a, b);
      await setPolicy(room.id, { policy: 'director' });
      director.push(
        { chunks: [`@${b.handle}`], finishReason: 'length' },
        { chunks: [] },
        { chunks: [`I think @${a.handle} should answer.`] },
        { chunks: [`<think>maybe @${a.handle}?</think>\n `, `@${b.handle}\n`] },
      );
      for (const text of ['one', 'two', 'three', 'four']) await send(t, alice, room.id, text);
      expect(await settle(room.id, 1)).toEqual([b.handle]);
      expect(director).toHaveLength(0);
    });

    it("director with cross-talk: the model picks who answers a persona's reply, never itself", async () => {
      const [a, b] = [await createPersona(), await createPersona()];
      const room = await roomWith(a, b);
      await setPolicy(room.id, { policy: 'director', crossTalk: true, maxConsecutiveTurns: 5 });
      // Person → a (director); a's reply → b (director); b's reply → "a"… then none.
      director.push({ chunks: [a.handle] }, { chunks: [b.handle] }, { chunks: ['none'] });
      await send(t, alice, room.id, 'debate!');
      expect(await settle(room.id, 2)).toEqual([a.handle, b.handle]);
      const last = directorRequests[directorRequests.length - 1];
      // Asked after b spoke: b is not a candidate.
      expect(last.messages[0].content).toContain(`@${a.handle}`);
      expect(last.messages[0].content).not.toContain(`@${b.handle} (`);
    });
  });

  describe('loop guards', () => {
    it('a persona-to-persona exchange stops at the cap with one notice; a person resets it', async () => {
      const [a, b] = [await createPersona(), await createPersona()];
      says.set(a.handle, `what do you think, @${b.handle}?`);
      says.set(b.handle, `and you, @${a.handle}?`);
      const room = await roomWith(a, b);
      const set = await setPolicy(room.id, {
        crossTalk: true,
        maxConsecutiveTurns: 3,
        cooldownMs: 0,
        chainBudget: 100,
      });
      expect(set.effective).toMatchObject({
        maxConsecutiveTurns: 3,
        cooldownMs: 0,
        chainBudget: 100,
      });

      await send(t, alice, room.id, `@${a.handle} start`);
      expect(await settle(room.id, 3)).toEqual([a.handle, b.handle, a.handle]);
      expect(notices(room.id)).toEqual([
        "Personas paused after 3 turns in a row without a person's message (loop guard); write something to go on.",
      ]);
      // A person's message starts a new chain: three turns again, one more notice.
      await send(t, bob, room.id, `@${b.handle} go on`);
      expect((await settle(room.id, 6)).slice(3)).toEqual([b.handle, a.handle, b.handle]);
      expect(notices(room.id)).toHaveLength(2);
    });

    it("people chatting meanwhile do not extend an exchange: each person's message that calls personas bounds its own chain", async () => {
      const [a, b] = [await createPersona(), await createPersona()];
      says.set(a.handle, `what do you think, @${b.handle}?`);
      says.set(b.handle, `and you, @${a.handle}?`);
      delays.set(a.handle, 60);
      delays.set(b.handle, 60);
      const room = await roomWith(a, b);
      await setPolicy(room.id, {
        crossTalk: true,
        maxConsecutiveTurns: 3,
        cooldownMs: 0,
        chainBudget: 100,
      });
      await send(t, alice, room.id, `@${a.handle} start`);
      // Bob chats (calling nobody) after each persona turn: the exchange still stops at 3.
      for (let n = 1; n <= 3; n++) {
        while (replies(room.id).length < n) await sleep(5);
        await send(t, bob, room.id, `just chatting ${n}`);
      }
      expect(await settle(room.id, 3)).toEqual([a.handle, b.handle, a.handle]);
      expect(notices(room.id)).toHaveLength(1);
    });

    it('a chain ends when its person may no longer write (muted mid-exchange)', async () => {
      const [a, b] = [await createPersona(), await createPersona()];
      says.set(a.handle, `what do you think, @${b.handle}?`);
      says.set(b.handle, `and you, @${a.handle}?`);
      delays.set(a.handle, 400);
      delays.set(b.handle, 400);
      const room = await roomWith(a, b);
      await setPolicy(room.id, {
        crossTalk: true,
        maxConsecutiveTurns: 6,
        cooldownMs: 0,
        chainBudget: 100,
      });
      await send(t, alice, room.id, `@${a.handle} start`);
      while (replies(room.id).length < 1) await sleep(5);
      await t
        .http()
        .post(api(`/rooms/${room.id}/mutes`))
        .set(admin.auth)
        .send({ userId: alice.id, reason: 'enough' })
        .expect(201);
      // The turn already under way when the mute landed may finish; none starts after it
      // (unchecked, the exchange would run to its cap of 6).
      await sleep(3000);
      expect(replies(room.id).length).toBeLessThanOrEqual(2);
      expect(await settle(room.id, replies(room.id).length)).toEqual(
        [a.handle, b.handle].slice(0, replies(room.id).length),
      );
    });

    it('cooldown: it runs from when the persona last spoke, not from when it was called', async () => {
      const [a, b] = [await createPersona(), await createPersona()];
      says.set(a.handle, `@${b.handle}, your view?`);
      says.set(b.handle, `back to you @${a.handle}`);
      delays.set(a.handle, 600); // a writes for 1.2 s, longer than its 1 s cooldown
      const room = await roomWith(a, b);
      await setPolicy(room.id, { crossTalk: true, maxConsecutiveTurns: 10, cooldownMs: 1000 });
      await send(t, alice, room.id, `@${a.handle} begin`);
      expect(await settle(room.id, 2)).toEqual([a.handle, b.handle]);
      expect(notices(room.id)).toEqual([
        `${a.displayName} (@${a.handle}) was not called: it spoke less than 1 s ago (loop guard); personas paused until someone writes.`,
      ]);
    });

    it('round-robin with cross-talk: personas go round the table up to the cap', async () => {
      const [a, b, c] = [await createPersona(), await createPersona(), await createPersona()];
      const room = await roomWith(a, b, c);
      await setPolicy(room.id, {
        policy: 'round-robin',
        crossTalk: true,
        maxConsecutiveTurns: 4,
        cooldownMs: 0,
      });
      await send(t, alice, room.id, 'tell me a story, one sentence each');
      expect(await settle(room.id, 4)).toEqual([a.handle, b.handle, c.handle, a.handle]);
      expect(notices(room.id)).toHaveLength(1);
    });

    it('cooldown: a persona that just spoke is not called back; one notice', async () => {
      const [a, b] = [await createPersona(), await createPersona()];
      says.set(a.handle, `@${b.handle}, your view?`);
      says.set(b.handle, `back to you @${a.handle}`);
      const room = await roomWith(a, b);
      await setPolicy(room.id, { crossTalk: true, maxConsecutiveTurns: 10, cooldownMs: 60000 });
      await send(t, alice, room.id, `@${a.handle} begin`);
      expect(await settle(room.id, 2)).toEqual([a.handle, b.handle]);
      expect(notices(room.id)).toEqual([
        `${a.displayName} (@${a.handle}) was not called: it spoke less than 1 min ago (loop guard); personas paused until someone writes.`,
      ]);
    });

    it('budget: persona-to-persona replies per room are counted; one notice per window', async () => {
      const [a, b] = [await createPersona(), await createPersona()];
      says.set(a.handle, `@${b.handle}?`);
      says.set(b.handle, `@${a.handle}!`);
      const room = await roomWith(a, b);
      await setPolicy(room.id, {
        crossTalk: true,
        maxConsecutiveTurns: 10,
        cooldownMs: 0,
        chainBudget: 2,
      });
      await send(t, alice, room.id, `@${a.handle} one`);
      // a (called by alice, not counted), b and a (the budget's two), then b is refused.
      expect(await settle(room.id, 3)).toEqual([a.handle, b.handle, a.handle]);
      expect(notices(room.id)).toHaveLength(1);
      expect(notices(room.id)[0]).toContain('budget of 2 replies to each other per 1 h');
      // People still get answers; a's reply calls nobody, and the room is not told again.
      await send(t, alice, room.id, `@${a.handle} two`);
      expect((await settle(room.id, 4)).slice(3)).toEqual([a.handle]);
      expect(notices(room.id)).toHaveLength(1);
    });
  });

  describe('the policy route', () => {
    it('members read it; moderators, the owner and admins change it; plain members get 403', async () => {
      const p = await createPersona();
      const room = await roomWith(p);
      const mod = await newUser(t);
      await join(t, mod, room.id);
      await t
        .http()
        .put(api(`/rooms/${room.id}/members/${mod.id}/role`))
        .set(admin.auth)
        .send({ role: 'moderator' })
        .expect(200);

      const read = await t
        .http()
        .get(api(`/rooms/${room.id}/persona-policy`))
        .set(alice.auth)
        .expect(200);
      expect(read.body).toEqual({
        policy: 'mention',
        crossTalk: false,
        maxSpeakers: 1,
        seed: 0,
        maxConsecutiveTurns: null,
        chainBudget: null,
        cooldownMs: null,
        effective: {
          maxConsecutiveTurns: 3,
          chainBudget: 50,
          chainBudgetWindowMs: 3600000,
          cooldownMs: 0,
        },
      });
      const refused = await setPolicy(room.id, { policy: 'auto' }, alice, 403);
      expect(refused.code).toBe('FORBIDDEN');
      const outsider = await newUser(t);
      await setPolicy(room.id, { policy: 'auto' }, outsider, 403); // public room: visible

      const changed = await setPolicy(room.id, { policy: 'round-robin', cooldownMs: 1500 }, mod);
      expect(changed).toMatchObject({ policy: 'round-robin', cooldownMs: 1500 });
      expect(changed.effective).toMatchObject({ cooldownMs: 1500 });
      // The room is told; the change is audited with what changed.
      await sleep(50);
      expect(
        created.some(
          (m) =>
            m.roomId === room.id &&
            m.role === 'system' &&
            m.content ===
              `${mod.username} changed the personas' settings: turn-taking is now round-robin (personas take turns).`,
        ),
      ).toBe(true);
      const audit = await t
        .http()
        .get(api(`/admin/audit?action=room.persona_policy&roomId=${room.id}`))
        .set(admin.auth)
        .expect(200);
      expect(audit.body.items).toEqual([
        expect.objectContaining({
          actorId: mod.id,
          targetType: 'room',
          targetId: room.id,
          details: {
            from: { policy: 'mention', cooldownMs: null },
            to: { policy: 'round-robin', cooldownMs: 1500 },
          },
        }),
      ]);
      // The same values again change nothing and record nothing; null restores a default.
      await setPolicy(room.id, { policy: 'round-robin', cooldownMs: 1500 }, admin);
      const reset = await setPolicy(room.id, { cooldownMs: null }, admin);
      expect(reset).toMatchObject({ policy: 'round-robin', cooldownMs: null });
      const after = await t
        .http()
        .get(api(`/admin/audit?action=room.persona_policy&roomId=${room.id}`))
        .set(admin.auth)
        .expect(200);
      expect(after.body.items).toHaveLength(2);

      // Moderators only tighten the loop guards: looser than the server's defaults is for admins.
      for (const body of [
        { maxConsecutiveTurns: 4 },
        { chainBudget: 51, maxConsecutiveTurns: 2 },
      ]) {
        const looser = await setPolicy(room.id, body, mod, 403);
        expect(looser.code).toBe('FORBIDDEN');
        expect(looser.message).toMatch(/^Only admins may loosen the loop guards/);
      }
      const tighter = await setPolicy(room.id, { maxConsecutiveTurns: 2, chainBudget: 10 }, mod);
      expect(tighter.effective).toMatchObject({ maxConsecutiveTurns: 2, chainBudget: 10 });
      const loosened = await setPolicy(room.id, { maxConsecutiveTurns: 20, chainBudget: 500 });
      expect(loosened.effective).toMatchObject({ maxConsecutiveTurns: 20, chainBudget: 500 });
      await setPolicy(room.id, { maxConsecutiveTurns: null, chainBudget: null });
    });

    it('refuses invalid values and rooms that are not group rooms', async () => {
      const room = await roomWith();
      for (const body of [
        { policy: 'chaos' },
        { maxSpeakers: 0 },
        { maxSpeakers: 11 },
        { cooldownMs: -1 },
        { maxConsecutiveTurns: 0 },
        { chainBudget: 1.5 },
        { seed: -1 },
        { crossTalk: 'yes' },
        { policy: null },
      ]) {
        const res = await setPolicy(room.id, body, admin, 400);
        expect(res.code).toBe('VALIDATION_FAILED');
      }
      const p = await createPersona();
      const conv = await t
        .http()
        .post(api('/conversations'))
        .set(alice.auth)
        .send({ personaId: p.id })
        .expect(201);
      await setPolicy(conv.body.id as string, { policy: 'auto' }, alice, 403);
      await t
        .http()
        .get(api(`/rooms/${randomUUID()}/persona-policy`))
        .set(alice.auth)
        .expect(404);
    });
  });
});
