import { EventEmitter2 } from '@nestjs/event-emitter';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { DataSource } from 'typeorm';
import type {
  PersonaStreamDelta,
  PersonaStreamEnd,
  PersonaStreamStart,
} from '../src/chat/contract';
import type { MessageDto } from '../src/messages/dto/message.dto';
import { startApp, TestApp } from './support/app';
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
import { FakeLlm, sleep } from './support/fake-llm';
import { call, ClientSocket, connect, next, ok, record } from './support/socket';

const api = (path: string) => `/api/v1${path}`;

type Captured =
  | { name: 'persona.stream.start'; payload: PersonaStreamStart }
  | { name: 'persona.stream.delta'; payload: PersonaStreamDelta }
  | { name: 'persona.stream.end'; payload: PersonaStreamEnd }
  | { name: 'message.created'; payload: { message: MessageDto } };

/** Records the domain events the chat gateway turns into socket events. */
class EventLog {
  readonly all: Captured[] = [];
  constructor(t: TestApp) {
    const emitter = t.app.get(EventEmitter2);
    for (const name of [
      'persona.stream.start',
      'persona.stream.delta',
      'persona.stream.end',
      'message.created',
    ] as const) {
      emitter.on(name, (payload: unknown) => this.all.push({ name, payload } as Captured));
    }
  }
  roomId(e: Captured): string {
    return e.name === 'message.created' ? e.payload.message.roomId : e.payload.roomId;
  }
  of(roomId: string): Captured[] {
    return this.all.filter((e) => this.roomId(e) === roomId);
  }
  starts(roomId: string) {
    return this.of(roomId).flatMap((e) => (e.name === 'persona.stream.start' ? [e.payload] : []));
  }
  deltas(streamId: string) {
    return this.all.flatMap((e) =>
      e.name === 'persona.stream.delta' && e.payload.messageId === streamId ? [e.payload] : [],
    );
  }
  ends(roomId: string) {
    return this.of(roomId).flatMap((e) => (e.name === 'persona.stream.end' ? [e.payload] : []));
  }
  created(roomId: string) {
    return this.of(roomId).flatMap((e) =>
      e.name === 'message.created' ? [e.payload.message] : [],
    );
  }
  notices(roomId: string) {
    return this.created(roomId)
      .filter((m) => m.role === 'system')
      .map((m) => m.content ?? '');
  }
  async until<T>(probe: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = probe();
      if (value) return value;
      if (Date.now() > deadline) throw new Error('timed out waiting for events');
      await sleep(10);
    }
  }
  /** The n-th (1-based) stream end in the room. */
  end(roomId: string, n = 1, timeoutMs?: number) {
    return this.until(() => this.ends(roomId)[n - 1], timeoutMs);
  }
}

interface Persona {
  id: string;
  handle: string;
  displayName: string;
  systemPrompt?: string;
}

describe('personas (e2e)', () => {
  let t: TestApp;
  let fake: FakeLlm;
  let log: EventLog;
  let admin: TestUser;
  let alice: TestUser;
  let bob: TestUser;
  let seq = 0;

  const createPersona = async (patch: Record<string, unknown> = {}): Promise<Persona> => {
    const handle = `bot_${++seq}_${randomUUID().slice(0, 4)}`;
    const res = await t
      .http()
      .post(api('/personas'))
      .set(admin.auth)
      .send({
        handle,
        displayName: `Bot ${seq}`,
        systemPrompt: `You are bot ${seq}.`,
        style: 'Be brief.',
        ...patch,
      })
      .expect(201);
    return res.body as Persona;
  };
  const attach = (roomId: string, personaId: string) =>
    t
      .http()
      .post(api(`/rooms/${roomId}/personas/${personaId}`))
      .set(admin.auth)
      .expect(200);
  /** A public room with alice and bob in it and the given personas attached. */
  const roomWith = async (...personas: Persona[]): Promise<TestRoom> => {
    const room = await newRoom(t, admin, {
      theme: 'deep space',
      description: 'Questions about stars',
    });
    await join(t, alice, room.id);
    await join(t, bob, room.id);
    for (const p of personas) await attach(room.id, p.id);
    return room;
  };
  const history = async (user: TestUser, roomId: string) =>
    (
      await t
        .http()
        .get(api(`/rooms/${roomId}/messages?limit=200`))
        .set(user.auth)
        .expect(200)
    ).body.items as MessageDto[];

  beforeAll(async () => {
    fake = await FakeLlm.start();
    t = await startApp({
      ...ADMIN_ENV,
      ...NO_WRITE_LIMITS,
      LLM_BASE_URL: fake.url,
      LLM_MODEL: 'default-model',
      LLM_TIMEOUT_MS: '700',
      PERSONA_STREAM_FLUSH_MS: '40',
      PERSONA_TRIGGER_RATE_LIMIT: '1000',
    });
    log = new EventLog(t);
    admin = await loginAdmin(t);
    [alice, bob] = [await newUser(t), await newUser(t)];
  });
  afterAll(async () => {
    await t.close();
    await fake.close();
  });

  describe('management', () => {
    it('admins create, change and delete personas; handles are lower-cased and unique', async () => {
      const res = await t
        .http()
        .post(api('/personas'))
        .set(admin.auth)
        .send({
          handle: ' Sage_Admin ',
          displayName: 'Sage',
          systemPrompt: 'secret sauce',
          temperature: 0.2,
          maxTokens: 64,
        })
        .expect(201);
      expect(res.body).toMatchObject({
        handle: 'sage_admin',
        displayName: 'Sage',
        systemPrompt: 'secret sauce',
        style: '',
        model: null,
        temperature: expect.closeTo(0.2, 5),
        maxTokens: 64,
        enabled: true,
        avatarUrl: null,
        createdBy: admin.id,
      });
      const id = res.body.id as string;
      await t
        .http()
        .post(api('/personas'))
        .set(admin.auth)
        .send({ handle: 'SAGE_ADMIN', displayName: 'Other' })
        .expect(409);

      const patched = await t
        .http()
        .patch(api(`/personas/${id}`))
        .set(admin.auth)
        .send({ model: 'llama3.2', avatarUrl: 'https://example.com/a.png', style: 'Terse.' })
        .expect(200);
      expect(patched.body).toMatchObject({
        model: 'llama3.2',
        avatarUrl: 'https://example.com/a.png',
        style: 'Terse.',
      });
      const cleared = await t
        .http()
        .patch(api(`/personas/${id}`))
        .set(admin.auth)
        .send({ model: null })
        .expect(200);
      expect(cleared.body.model).toBeNull();

      await t
        .http()
        .delete(api(`/personas/${id}`))
        .set(admin.auth)
        .expect(204);
      await t
        .http()
        .get(api(`/personas/${id}`))
        .set(admin.auth)
        .expect(404);
      await t
        .http()
        .delete(api(`/personas/${id}`))
        .set(admin.auth)
        .expect(404);
    });

    it('users read personas without the system prompt and cannot manage them (403)', async () => {
      const p = await createPersona({ systemPrompt: 'hidden instructions' });
      const one = await t
        .http()
        .get(api(`/personas/${p.id}`))
        .set(alice.auth)
        .expect(200);
      expect(one.body.handle).toBe(p.handle);
      expect(one.body).not.toHaveProperty('systemPrompt');
      const list = await t.http().get(api('/personas?limit=200')).set(alice.auth).expect(200);
      expect(list.body.items.map((x: Persona) => x.handle)).toContain(p.handle);
      expect(JSON.stringify(list.body)).not.toContain('hidden instructions');
      expect(
        (
          await t
            .http()
            .get(api(`/personas/${p.id}`))
            .set(admin.auth)
            .expect(200)
        ).body.systemPrompt,
      ).toBe('hidden instructions');

      const room = await roomWith();
      await t
        .http()
        .post(api('/personas'))
        .set(alice.auth)
        .send({ handle: 'mine', displayName: 'Mine' })
        .expect(403);
      await t
        .http()
        .patch(api(`/personas/${p.id}`))
        .set(alice.auth)
        .send({ enabled: false })
        .expect(403);
      await t
        .http()
        .delete(api(`/personas/${p.id}`))
        .set(alice.auth)
        .expect(403);
      await t
        .http()
        .post(api(`/rooms/${room.id}/personas/${p.id}`))
        .set(alice.auth)
        .expect(403);
      await t
        .http()
        .delete(api(`/rooms/${room.id}/personas/${p.id}`))
        .set(alice.auth)
        .expect(403);
    });

    it('pages through personas by handle', async () => {
      for (let i = 0; i < 3; i++) await createPersona();
      const first = await t.http().get(api('/personas?limit=2')).set(alice.auth).expect(200);
      expect(first.body.items).toHaveLength(2);
      const next = await t
        .http()
        .get(api(`/personas?limit=2&after=${first.body.nextCursor}`))
        .set(alice.auth)
        .expect(200);
      expect(next.body.items[0].handle > first.body.items[1].handle).toBe(true);
    });

    it.each([
      ['a handle that is too short', { handle: 'a' }],
      ['a handle with other characters', { handle: 'sage-bot' }],
      ['a temperature above 2', { temperature: 2.5 }],
      ['zero max tokens', { maxTokens: 0 }],
      ['a non-http avatar', { avatarUrl: 'javascript:alert(1)' }],
      ['an unknown field', { owner: 'me' }],
      ['a null display name', { displayName: null }],
    ])('rejects %s with 400', async (_, patch) => {
      const res = await t
        .http()
        .post(api('/personas'))
        .set(admin.auth)
        .send({ handle: `ok_${++seq}`, displayName: 'Ok', ...patch })
        .expect(400);
      expect(res.body.code).toBe('VALIDATION_FAILED');
    });

    it('rejects null for required fields on update and bad ids', async () => {
      const p = await createPersona();
      await t
        .http()
        .patch(api(`/personas/${p.id}`))
        .set(admin.auth)
        .send({ displayName: null })
        .expect(400);
      await t
        .http()
        .patch(api(`/personas/${p.id}`))
        .set(admin.auth)
        .send({ enabled: null })
        .expect(400);
      await t.http().get(api('/personas/not-a-uuid')).set(admin.auth).expect(400);
      await t
        .http()
        .get(api(`/personas/${randomUUID()}`))
        .set(admin.auth)
        .expect(404);
    });
  });

  describe('personas in rooms', () => {
    it('admins attach (idempotent, announced) and detach; members list them', async () => {
      const p = await createPersona();
      const room = await roomWith();
      const attached = await attach(room.id, p.id);
      expect(attached.body.map((x: Persona) => x.id)).toEqual([p.id]);
      await attach(room.id, p.id);
      const listed = await t
        .http()
        .get(api(`/rooms/${room.id}/personas`))
        .set(alice.auth)
        .expect(200);
      expect(listed.body).toEqual([expect.objectContaining({ id: p.id, handle: p.handle })]);
      expect(listed.body[0]).not.toHaveProperty('systemPrompt');
      const added = (await history(alice, room.id)).filter((m) => m.content?.includes('was added'));
      expect(added).toHaveLength(1);

      await t
        .http()
        .delete(api(`/rooms/${room.id}/personas/${p.id}`))
        .set(admin.auth)
        .expect(204);
      await t
        .http()
        .delete(api(`/rooms/${room.id}/personas/${p.id}`))
        .set(admin.auth)
        .expect(404);
      expect(
        (
          await t
            .http()
            .get(api(`/rooms/${room.id}/personas`))
            .set(alice.auth)
            .expect(200)
        ).body,
      ).toEqual([]);
      await t
        .http()
        .post(api(`/rooms/${room.id}/personas/${randomUUID()}`))
        .set(admin.auth)
        .expect(404);
    });

    it('a detached persona no longer answers', async () => {
      const p = await createPersona();
      const room = await roomWith(p);
      await t
        .http()
        .delete(api(`/rooms/${room.id}/personas/${p.id}`))
        .set(admin.auth)
        .expect(204);
      const before = fake.requests.length;
      await send(t, alice, room.id, `@${p.handle} still there?`);
      await sleep(300);
      expect(log.starts(room.id)).toEqual([]);
      expect(fake.requests.length).toBe(before);
    });

    // Before: detaching dropped the cache only; the streaming reply went on to the end and the
    // waiting one was still generated and posted by a persona no longer in the room.
    it('detaching a persona stops its streaming reply and drops the waiting one', async () => {
      const p = await createPersona();
      const room = await roomWith(p);
      const slow = { chunks: Array.from({ length: 60 }, (_, i) => `d${i} `), delayMs: 40 };
      fake.enqueue(slow); // the second would take the default answer (none is left queued)
      await send(t, alice, room.id, `@${p.handle} first question`);
      await send(t, alice, room.id, `@${p.handle} second question`);
      const start = await log.until(() => log.starts(room.id)[0]);
      await log.until(() => log.deltas(start.messageId).length >= 2);
      const before = fake.requests.length;
      await t
        .http()
        .delete(api(`/rooms/${room.id}/personas/${p.id}`))
        .set(admin.auth)
        .expect(204);
      const end = await log.end(room.id, 1, 3000);
      expect(end.finishReason).toBe('cancelled');
      expect(end.message!.content!.length).toBeLessThan(slow.chunks.join('').length);
      await sleep(800);
      expect(log.starts(room.id)).toHaveLength(1); // the second reply never started
      expect(fake.requests.length).toBe(before);
      const replies = (await history(alice, room.id)).filter((m) => m.role === 'assistant');
      expect(replies.map((m) => m.finishReason)).toEqual(['cancelled']);
    });

    it('disabling a persona stops its streaming reply', async () => {
      const p = await createPersona();
      const room = await roomWith(p);
      fake.enqueue({ chunks: Array.from({ length: 60 }, (_, i) => `e${i} `), delayMs: 40 });
      await send(t, alice, room.id, `@${p.handle} go on`);
      const start = await log.until(() => log.starts(room.id)[0]);
      await log.until(() => log.deltas(start.messageId).length >= 2);
      await t
        .http()
        .patch(api(`/personas/${p.id}`))
        .set(admin.auth)
        .send({ enabled: false })
        .expect(200);
      const end = await log.end(room.id, 1, 3000);
      expect(end.finishReason).toBe('cancelled');
    });
  });

  describe('replies', () => {
    it('a mention triggers a streamed reply: deltas in order, coalesced, concatenating to the saved message', async () => {
      const sage = await createPersona({ handle: `sage_${++seq}`, displayName: 'Sage' });
      const room = await roomWith(sage);
      const chunks = Array.from({ length: 30 }, (_, i) => `w${i} `);
      fake.enqueue({ chunks, delayMs: 5 });
      const trigger = await send(
        t,
        alice,
        room.id,
        `hey @${sage.handle.toUpperCase()}, tell me a story`,
      );

      const end = await log.end(room.id);
      const [start] = log.starts(room.id);
      expect(start).toEqual({
        messageId: end.messageId,
        roomId: room.id,
        personaId: sage.id,
        replyToId: trigger.id,
      });
      const deltas = log.deltas(start.messageId);
      expect(deltas.map((d) => d.seq)).toEqual(deltas.map((_, i) => i));
      expect(deltas.length).toBeGreaterThan(1);
      expect(deltas.length).toBeLessThan(chunks.length); // coalesced, not one event per token
      const streamed = deltas.map((d) => d.delta).join('');
      expect(streamed).toBe(chunks.join(''));

      expect(end.finishReason).toBe('stop');
      expect(end.message).toMatchObject({
        roomId: room.id,
        role: 'assistant',
        content: streamed,
        replyToId: trigger.id,
        finishReason: 'stop',
        author: { id: sage.id, kind: 'persona', handle: sage.handle, displayName: 'Sage' },
      });
      // Saved once, announced once (after the end of the stream), and in history for late joiners.
      const events = log.of(room.id).map((e) => e.name);
      expect(events.indexOf('persona.stream.end')).toBeLessThan(
        events.lastIndexOf('message.created'),
      );
      expect(log.created(room.id).filter((m) => m.role === 'assistant')).toEqual([end.message]);
      const carol = await newUser(t);
      await join(t, carol, room.id);
      const saved = (await history(carol, room.id)).filter((m) => m.role === 'assistant');
      expect(saved).toEqual([
        expect.objectContaining({ id: end.message!.id, content: streamed, finishReason: 'stop' }),
      ]);
      // Nobody edits a persona's words, admins included (403, content unchanged).
      for (const who of [alice, admin])
        await t
          .http()
          .patch(api(`/messages/${end.message!.id}`))
          .set(who.auth)
          .send({ content: 'put words in its mouth' })
          .expect(403);
      expect((await history(carol, room.id)).find((m) => m.id === end.message!.id)?.content).toBe(
        streamed,
      );
    });

    it('the request carries the system prompt, style, room theme and history in the right roles', async () => {
      const sage = await createPersona({
        systemPrompt: 'You are Sage, an astronomer.',
        style: 'Answer in one sentence.',
        temperature: 0.3,
        maxTokens: 99,
      });
      const bard = await createPersona({ model: 'bard-model' });
      const room = await roomWith(sage, bard);

      fake.enqueue({ chunks: ['Stars are hot.'] });
      await send(t, bob, room.id, `@${sage.handle} what are stars?`);
      await log.end(room.id, 1);
      fake.enqueue({ chunks: ['I sing of stars!'] });
      await send(t, alice, room.id, `@${bard.handle} sing`);
      await log.end(room.id, 2);
      const bardRequest = fake.requests[fake.requests.length - 1];
      expect(bardRequest.model).toBe('bard-model');

      fake.enqueue({ chunks: ['Yes.'] });
      await send(t, alice, room.id, `@${sage.handle} really?`);
      await log.end(room.id, 3);
      const body = fake.requests[fake.requests.length - 1];

      expect(body).toMatchObject({ model: 'default-model', stream: true, max_tokens: 99 });
      expect(body.temperature).toBeCloseTo(0.3, 5);
      const [system, ...rest] = body.messages;
      expect(system.role).toBe('system');
      for (const part of [
        'You are Sage, an astronomer.',
        'Answer in one sentence.',
        'deep space',
        'Questions about stars',
      ]) {
        expect(system.content).toContain(part);
      }
      const tail = rest.slice(-5);
      expect(tail).toEqual([
        { role: 'user', content: `${bob.username}: @${sage.handle} what are stars?` },
        { role: 'assistant', content: 'Stars are hot.' },
        { role: 'user', content: `${alice.username}: @${bard.handle} sing` },
        { role: 'user', content: `${bard.handle}: I sing of stars!` },
        { role: 'user', content: `${alice.username}: @${sage.handle} really?` },
      ]);
      // Room notices (joins, the persona being added) are system messages in the history.
      expect(rest.some((m) => m.role === 'system' && m.content.includes('joined'))).toBe(true);
    });

    it('two quick mentions get two replies, one at a time, in order', async () => {
      const sage = await createPersona();
      const room = await roomWith(sage);
      fake.enqueue(
        { chunks: ['first ', 'answer'], delayMs: 60 },
        { chunks: ['second ', 'answer'], delayMs: 10 },
      );
      const q1 = await send(t, alice, room.id, `@${sage.handle} one`);
      const q2 = await send(t, bob, room.id, `@${sage.handle} two`);
      await log.end(room.id, 2);

      const names = log
        .of(room.id)
        .filter((e) => e.name.startsWith('persona.stream.s') || e.name.endsWith('end'))
        .map((e) => e.name);
      expect(names).toEqual([
        'persona.stream.start',
        'persona.stream.end',
        'persona.stream.start',
        'persona.stream.end',
      ]);
      const replies = (await history(alice, room.id)).filter((m) => m.role === 'assistant');
      expect(replies.map((m) => [m.replyToId, m.content])).toEqual([
        [q1.id, 'first answer'],
        [q2.id, 'second answer'],
      ]);
      // The second request answers the second question (it is the last message sent).
      expect(fake.requests[fake.requests.length - 1].messages.at(-1)?.content).toBe(
        `${bob.username}: @${sage.handle} two`,
      );
    });

    it('never answers assistant or system messages, and a mention of a stranger does nothing', async () => {
      const sage = await createPersona();
      const room = await roomWith(sage);
      const before = fake.requests.length;
      fake.respond = () => ({ chunks: [`@${sage.handle} talk to yourself`] });
      try {
        await send(t, alice, room.id, `@${sage.handle} say your own handle`);
        await log.end(room.id);
        await send(t, alice, room.id, '@nobody_here hello');
        await sleep(300);
        expect(log.starts(room.id)).toHaveLength(1);
        expect(fake.requests.length).toBe(before + 1);
      } finally {
        fake.respond = () => ({ chunks: ['Hello', ' there', '.'] });
      }
    });

    it('a disabled persona does not answer', async () => {
      const sage = await createPersona();
      const room = await roomWith(sage);
      await t
        .http()
        .patch(api(`/personas/${sage.id}`))
        .set(admin.auth)
        .send({ enabled: false })
        .expect(200);
      const before = fake.requests.length;
      await send(t, alice, room.id, `@${sage.handle} are you there?`);
      await sleep(300);
      expect(log.starts(room.id)).toEqual([]);
      expect(fake.requests.length).toBe(before);
      expect((await history(alice, room.id)).filter((m) => m.role === 'assistant')).toEqual([]);
    });
  });

  describe('cancel', () => {
    const slow = () => ({ chunks: Array.from({ length: 40 }, (_, i) => `t${i} `), delayMs: 40 });

    it('the asker cancels mid-stream: the partial text is saved, marked cancelled', async () => {
      const sage = await createPersona();
      const room = await roomWith(sage);
      fake.enqueue(slow());
      await send(t, alice, room.id, `@${sage.handle} long story please`);
      const start = await log.until(() => log.starts(room.id)[0]);
      await log.until(() => log.deltas(start.messageId).length >= 2);

      const cancel = (user: TestUser, id = start.messageId) =>
        t
          .http()
          .post(api(`/personas/streams/${id}/cancel`))
          .set(user.auth);
      await cancel(bob).expect(403); // a member, but not the asker
      const stranger = await newUser(t);
      await cancel(stranger).expect(404);
      await cancel(alice, randomUUID()).expect(404);
      await cancel(alice).expect(204);

      const end = await log.end(room.id);
      expect(end.finishReason).toBe('cancelled');
      const streamed = log
        .deltas(start.messageId)
        .map((d) => d.delta)
        .join('');
      expect(streamed.length).toBeGreaterThan(0);
      expect(end.message).toMatchObject({
        content: streamed,
        finishReason: 'cancelled',
        role: 'assistant',
      });
      expect(streamed.length).toBeLessThan(slow().chunks.join('').length);
      const saved = (await history(alice, room.id)).find((m) => m.role === 'assistant');
      expect(saved).toMatchObject({ content: streamed, finishReason: 'cancelled' });
      await cancel(alice).expect(404); // over
      expect(log.notices(room.id).filter((n) => n.includes('could not'))).toEqual([]);
    });

    it('an admin may cancel anyone’s reply', async () => {
      const sage = await createPersona();
      const room = await roomWith(sage);
      fake.enqueue(slow());
      await send(t, bob, room.id, `@${sage.handle} go on and on`);
      const start = await log.until(() => log.starts(room.id)[0]);
      await log.until(() => log.deltas(start.messageId).length >= 1);
      await t
        .http()
        .post(api(`/personas/streams/${start.messageId}/cancel`))
        .set(admin.auth)
        .expect(204);
      expect((await log.end(room.id)).finishReason).toBe('cancelled');
    });
  });

  describe('upstream failures become system messages', () => {
    const failing = async (script: Parameters<FakeLlm['enqueue']>[0]) => {
      const sage = await createPersona({ displayName: `Failing ${++seq}` });
      const room = await roomWith(sage);
      fake.enqueue(script);
      await send(t, alice, room.id, `@${sage.handle} hello?`);
      const end = await log.end(room.id);
      const notice = await log.until(() =>
        log.notices(room.id).find((n) => n.includes(' could not ')),
      );
      return { end, notice, room };
    };

    it.each([
      [429, 'rate-limiting requests (429)'],
      [500, 'model server failed (500)'],
      [503, 'model server failed (503)'],
      [401, 'rejected the API key (401)'],
      [404, 'is not available on the model server (404)'],
    ])('HTTP %d', async (status, reason) => {
      const { end, notice } = await failing({ status });
      expect(end).toMatchObject({ finishReason: 'error', message: null });
      expect(notice).toContain('could not reply');
      expect(notice).toContain(reason);
    });

    it('a stream cut mid-way keeps the partial text, marked error, and says so', async () => {
      const { end, notice, room } = await failing({
        chunks: ['part one ', 'part two ', 'never'],
        cutAfter: 2,
      });
      expect(end.finishReason).toBe('error');
      expect(end.message).toMatchObject({ content: 'part one part two ', finishReason: 'error' });
      expect(notice).toContain('could not finish replying');
      expect(
        (await history(alice, room.id)).find((m) => m.role === 'assistant')?.finishReason,
      ).toBe('error');
    });

    it('a stream that ends without finishing is reported', async () => {
      const { end, notice } = await failing({ chunks: ['half'], endEarly: true });
      expect(end).toMatchObject({ finishReason: 'error', message: { content: 'half' } });
      expect(notice).toContain('ended before the model finished');
    });

    it.each([
      ['before answering', { hang: true as const }],
      ['after the headers', { hang: 'headers' as const }],
    ])('a model server that hangs %s times out (LLM_TIMEOUT_MS)', async (_, script) => {
      const started = Date.now();
      const { end, notice } = await failing(script);
      expect(end).toMatchObject({ finishReason: 'timeout', message: null });
      expect(notice).toContain('sent nothing for 0.7 s');
      expect(Date.now() - started).toBeLessThan(4000);
    });

    it('a model that stalls mid-reply times out and keeps what it said', async () => {
      const { end, notice } = await failing({
        chunks: ['so far ', 'so good ', 'x'],
        stallAfter: 2,
      });
      expect(end).toMatchObject({
        finishReason: 'timeout',
        message: { content: 'so far so good ', finishReason: 'timeout' },
      });
      expect(notice).toContain('could not finish replying');
    });

    it('the app keeps answering after all that', async () => {
      const sage = await createPersona();
      const room = await roomWith(sage);
      fake.enqueue({ chunks: ['fine'] });
      await send(t, alice, room.id, `@${sage.handle} ok?`);
      expect((await log.end(room.id)).message?.content).toBe('fine');
      await t.http().get('/health').expect(200);
    });
  });

  describe('conversations', () => {
    let sage: Persona;
    beforeAll(async () => {
      sage = await createPersona({ displayName: 'Sage', systemPrompt: 'private prompt' });
    });
    const create = (user: TestUser, body: Record<string, unknown>) =>
      t.http().post(api('/conversations')).set(user.auth).send(body);

    it('create, list (newest activity first, paged), get, rename', async () => {
      const a = (await create(alice, { personaId: sage.id }).expect(201)).body;
      expect(a).toEqual({
        id: expect.any(String),
        title: 'Sage',
        persona: {
          id: sage.id,
          handle: sage.handle,
          displayName: 'Sage',
          avatarUrl: null,
          enabled: true,
        },
        createdAt: expect.any(String),
        updatedAt: expect.any(String),
        lastMessage: null,
      });
      const b = (await create(alice, { personaId: sage.id, title: '  Trip plans ' }).expect(201))
        .body;
      expect(b.title).toBe('Trip plans');

      let list = (await t.http().get(api('/conversations')).set(alice.auth).expect(200)).body;
      expect(list.items.map((c: { id: string }) => c.id)).toEqual([b.id, a.id]);
      fake.enqueue({ chunks: ['Hi!'] });
      await send(t, alice, a.id, 'hello');
      await log.end(a.id);
      list = (await t.http().get(api('/conversations?limit=1')).set(alice.auth).expect(200)).body;
      expect(list.items.map((c: { id: string }) => c.id)).toEqual([a.id]);
      expect(list.items[0].lastMessage).toMatchObject({ role: 'assistant', content: 'Hi!' });
      const page2 = (
        await t
          .http()
          .get(api(`/conversations?limit=1&cursor=${list.nextCursor}`))
          .set(alice.auth)
          .expect(200)
      ).body;
      expect(page2.items.map((c: { id: string }) => c.id)).toEqual([b.id]);
      expect(page2.nextCursor).toBeNull();

      const renamed = await t
        .http()
        .patch(api(`/conversations/${a.id}`))
        .set(alice.auth)
        .send({ title: 'Renamed' })
        .expect(200);
      expect(renamed.body.title).toBe('Renamed');
      expect(
        (
          await t
            .http()
            .get(api(`/conversations/${a.id}`))
            .set(alice.auth)
            .expect(200)
        ).body.title,
      ).toBe('Renamed');
      // It is a room of kind conversation, listed with my rooms.
      const rooms = (
        await t.http().get(api('/rooms?kind=conversation')).set(alice.auth).expect(200)
      ).body.items;
      expect(rooms.map((r: { id: string }) => r.id).sort()).toEqual([a.id, b.id].sort());
    });

    it('every message of the owner is answered, without a mention', async () => {
      const c = (await create(alice, { personaId: sage.id }).expect(201)).body;
      fake.enqueue({ chunks: ['Answer one'] }, { chunks: ['Answer two'] });
      await send(t, alice, c.id, 'first question');
      await log.end(c.id, 1);
      await send(t, alice, c.id, 'second question');
      await log.end(c.id, 2);
      const items = await history(alice, c.id);
      expect(items.map((m) => [m.role, m.content])).toEqual([
        ['user', 'first question'],
        ['assistant', 'Answer one'],
        ['user', 'second question'],
        ['assistant', 'Answer two'],
      ]);
      const body = fake.requests[fake.requests.length - 1];
      expect(body.messages[0].content).toContain('private prompt');
      expect(body.messages.at(-1)).toEqual({
        role: 'user',
        content: `${alice.username}: second question`,
      });
    });

    it('is invisible to everyone else, admins included: 404 on every route', async () => {
      const c = (await create(alice, { personaId: sage.id }).expect(201)).body;
      const m = await send(t, alice, c.id, 'my secret');
      await log.end(c.id);
      for (const other of [bob, admin]) {
        await t
          .http()
          .get(api(`/conversations/${c.id}`))
          .set(other.auth)
          .expect(404);
        await t
          .http()
          .patch(api(`/conversations/${c.id}`))
          .set(other.auth)
          .send({ title: 'x' })
          .expect(404);
        await t
          .http()
          .delete(api(`/conversations/${c.id}`))
          .set(other.auth)
          .expect(404);
        await t
          .http()
          .get(api(`/rooms/${c.id}`))
          .set(other.auth)
          .expect(404);
        await t
          .http()
          .get(api(`/rooms/${c.id}/messages`))
          .set(other.auth)
          .expect(404);
        await t
          .http()
          .post(api(`/rooms/${c.id}/messages`))
          .set(other.auth)
          .send({ clientMsgId: 'x1', content: 'hi' })
          .expect(404);
        await t
          .http()
          .get(api(`/rooms/${c.id}/messages/search?q=secret`))
          .set(other.auth)
          .expect(404);
        await t
          .http()
          .get(api(`/messages/${m.id}/edits`))
          .set(other.auth)
          .expect(404);
        await t
          .http()
          .delete(api(`/messages/${m.id}`))
          .set(other.auth)
          .expect(404);
        await t
          .http()
          .post(api(`/rooms/${c.id}/join`))
          .set(other.auth)
          .expect(404);
        const list = (await t.http().get(api('/conversations')).set(other.auth).expect(200)).body;
        expect(list.items.map((x: { id: string }) => x.id)).not.toContain(c.id);
      }
      // Nor can an admin put another persona into it.
      await t
        .http()
        .post(api(`/rooms/${c.id}/personas/${sage.id}`))
        .set(admin.auth)
        .expect(404);
      // And a group room is not a conversation.
      const group = await roomWith();
      await t
        .http()
        .get(api(`/conversations/${group.id}`))
        .set(alice.auth)
        .expect(404);
    });

    it('deleting a conversation removes it and its messages from every view', async () => {
      const c = (await create(alice, { personaId: sage.id }).expect(201)).body;
      const m = await send(t, alice, c.id, 'to be forgotten');
      await log.end(c.id);
      await t
        .http()
        .delete(api(`/conversations/${c.id}`))
        .set(alice.auth)
        .expect(204);
      await t
        .http()
        .get(api(`/conversations/${c.id}`))
        .set(alice.auth)
        .expect(404);
      await t
        .http()
        .get(api(`/rooms/${c.id}/messages`))
        .set(alice.auth)
        .expect(404);
      await t
        .http()
        .get(api(`/messages/${m.id}/edits`))
        .set(alice.auth)
        .expect(404);
      const rooms = (await t.http().get(api('/rooms')).set(alice.auth).expect(200)).body.items;
      expect(rooms.map((r: { id: string }) => r.id)).not.toContain(c.id);
      const convs = (await t.http().get(api('/conversations')).set(alice.auth).expect(200)).body
        .items;
      expect(convs.map((r: { id: string }) => r.id)).not.toContain(c.id);
      const [{ n }] = await t.app
        .get(DataSource)
        .query<{ n: number }[]>(`SELECT count(*)::int AS n FROM messages WHERE room_id = $1`, [
          c.id,
        ]);
      expect(n).toBe(0);
    });

    it('deleting a conversation while its persona streams stops the reply', async () => {
      const c = (await create(alice, { personaId: sage.id }).expect(201)).body;
      fake.enqueue({ chunks: Array.from({ length: 50 }, () => 'x'), delayMs: 30 });
      await send(t, alice, c.id, 'tell me everything');
      const start = await log.until(() => log.starts(c.id)[0]);
      await log.until(() => log.deltas(start.messageId).length >= 1);
      await t
        .http()
        .delete(api(`/conversations/${c.id}`))
        .set(alice.auth)
        .expect(204);
      expect(await log.end(c.id, 1, 2000)).toMatchObject({
        finishReason: 'cancelled',
        message: null,
      });
    });

    it('validates input; unknown or disabled personas are refused; a disabled persona says so', async () => {
      await create(alice, { personaId: 'nope' }).expect(400);
      await create(alice, { personaId: sage.id, extra: 1 }).expect(400);
      await create(alice, { personaId: sage.id, title: '' }).expect(400);
      await create(alice, { personaId: randomUUID() }).expect(404);
      const quiet = await createPersona();
      const c = (await create(alice, { personaId: quiet.id }).expect(201)).body;
      await t
        .http()
        .patch(api(`/personas/${quiet.id}`))
        .set(admin.auth)
        .send({ enabled: false })
        .expect(200);
      await create(alice, { personaId: quiet.id }).expect(400);
      await t
        .http()
        .patch(api(`/conversations/${c.id}`))
        .set(alice.auth)
        .send({ title: null })
        .expect(400);
      const before = fake.requests.length;
      await send(t, alice, c.id, 'anyone?');
      expect(await log.until(() => log.notices(c.id)[0])).toContain('is disabled');
      expect(log.starts(c.id)).toEqual([]);
      expect(fake.requests.length).toBe(before);
    });
  });

  describe('over the socket', () => {
    const sockets: ClientSocket[] = [];
    const open = async (user: TestUser) => {
      const socket = await connect(t, user.accessToken);
      sockets.push(socket);
      return socket;
    };
    afterEach(() => {
      for (const socket of sockets.splice(0)) socket.close();
    });

    it('members receive persona.stream.start, deltas, end and message.created, in order', async () => {
      const sage = await createPersona({ displayName: 'Sage' });
      const room = await roomWith(sage);
      const [aliceSocket, bobSocket] = [await open(alice), await open(bob)];
      await ok(aliceSocket, 'room.join', { roomId: room.id });
      await ok(bobSocket, 'room.join', { roomId: room.id });
      const seen = record(
        bobSocket,
        'persona.stream.start',
        'persona.stream.delta',
        'persona.stream.end',
        'message.created',
      );

      fake.enqueue({ chunks: ['Twinkle ', 'twinkle ', 'little ', 'star'], delayMs: 30 });
      const sent = await ok(aliceSocket, 'message.send', {
        roomId: room.id,
        clientMsgId: randomUUID(),
        content: `@${sage.handle} sing`,
      });
      const reply = await next(bobSocket, 'message.created', (m) => m.role === 'assistant');

      const names = seen.events.map((e) => e.name);
      expect(names[0]).toBe('message.created'); // alice's message
      expect(names.slice(1, 2)).toEqual(['persona.stream.start']);
      expect(names.slice(-2)).toEqual(['persona.stream.end', 'message.created']);
      expect(names.slice(2, -2).every((n) => n === 'persona.stream.delta')).toBe(true);
      const [start] = seen.of('persona.stream.start');
      expect(start).toEqual({
        messageId: expect.any(String),
        roomId: room.id,
        personaId: sage.id,
        replyToId: sent.id,
      });
      const deltas = seen.of('persona.stream.delta');
      expect(deltas.map((d) => d.seq)).toEqual(deltas.map((_, i) => i));
      expect(deltas.map((d) => d.delta).join('')).toBe('Twinkle twinkle little star');
      const [end] = seen.of('persona.stream.end');
      expect(end).toMatchObject({
        messageId: start.messageId,
        finishReason: 'stop',
        message: { id: reply.id },
      });
      expect(reply).toMatchObject({
        content: 'Twinkle twinkle little star',
        author: { id: sage.id, kind: 'persona', handle: sage.handle, displayName: 'Sage' },
      });
    });

    it('nobody else hears a conversation: no socket events, and room.join is NOT_FOUND', async () => {
      const sage = await createPersona();
      const [aliceSocket, bobSocket, adminSocket] = [
        await open(alice),
        await open(bob),
        await open(admin),
      ];
      const c = (
        await t
          .http()
          .post(api('/conversations'))
          .set(alice.auth)
          .send({ personaId: sage.id })
          .expect(201)
      ).body;
      const outsiders = [
        record(
          bobSocket,
          'persona.stream.start',
          'persona.stream.delta',
          'persona.stream.end',
          'message.created',
          'room.created',
        ),
        record(
          adminSocket,
          'persona.stream.start',
          'persona.stream.delta',
          'persona.stream.end',
          'message.created',
          'room.created',
        ),
      ];
      for (const socket of [bobSocket, adminSocket]) {
        const res = await call(socket, 'room.join', { roomId: c.id });
        expect(res).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
      }
      // The owner's socket was subscribed when the conversation was created.
      fake.enqueue({ chunks: ['psst'] });
      await send(t, alice, c.id, 'a secret');
      const reply = await next(
        aliceSocket,
        'message.created',
        (m) => m.roomId === c.id && m.role === 'assistant',
      );
      expect(reply.content).toBe('psst');
      await sleep(100);
      // Only events about this conversation count: in CI's server run, suites in other Jest
      // workers share the Redis adapter, and their public rooms' room.created reach everyone.
      for (const o of outsiders)
        expect(o.events.filter((e) => JSON.stringify(e.payload).includes(c.id))).toEqual([]);
    });

    it('an admin demoted while connected can no longer cancel others’ replies on that socket', async () => {
      const sage = await createPersona();
      const room = await roomWith(sage);
      const carol = await newUser(t);
      await join(t, carol, room.id);
      const setRole = (role: 'admin' | 'user') =>
        t
          .http()
          .patch(api(`/users/${carol.id}`))
          .set(admin.auth)
          .send({ role })
          .expect(200);
      await setRole('admin');
      const carolSocket = await open(carol); // the handshake sees her as an admin
      const slow = () => ({ chunks: Array.from({ length: 40 }, (_, i) => `t${i} `), delayMs: 40 });

      // While an admin, she may cancel bob's reply.
      fake.enqueue(slow());
      await send(t, bob, room.id, `@${sage.handle} first`);
      const first = await log.until(() => log.starts(room.id)[0]);
      await ok(carolSocket, 'persona.cancel', { messageId: first.messageId });
      expect((await log.end(room.id, 1)).finishReason).toBe('cancelled');

      // Demoted, on the same socket: a member who did not ask, like any other.
      await setRole('user');
      fake.enqueue(slow());
      await send(t, bob, room.id, `@${sage.handle} second`);
      const second = await log.until(() => log.starts(room.id)[1]);
      const res = await call(carolSocket, 'persona.cancel', { messageId: second.messageId });
      expect(res).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
      await log.until(() => log.deltas(second.messageId).length >= 1);
      expect(log.ends(room.id)).toHaveLength(1); // still streaming
      await ok(await open(bob), 'persona.cancel', { messageId: second.messageId });
      expect((await log.end(room.id, 2)).finishReason).toBe('cancelled');
    });
  });
});

describe('personas without a model server (e2e)', () => {
  let t: TestApp;
  let log: EventLog;
  let admin: TestUser;
  let alice: TestUser;

  beforeAll(async () => {
    t = await startApp({
      ...ADMIN_ENV,
      LLM_BASE_URL: '',
      PERSONA_TRIGGER_RATE_LIMIT: '2',
      PERSONA_TRIGGER_RATE_WINDOW_MS: '60000',
    });
    log = new EventLog(t);
    admin = await loginAdmin(t);
    alice = await newUser(t);
  });
  afterAll(() => t.close());

  it('personas are managed and attached; a mention posts "not configured", never a fake reply; triggers are rate-limited', async () => {
    const p = (
      await t
        .http()
        .post(api('/personas'))
        .set(admin.auth)
        .send({ handle: 'sage', displayName: 'Sage' })
        .expect(201)
    ).body as Persona;
    const room = await newRoom(t, admin);
    await join(t, alice, room.id);
    await t
      .http()
      .post(api(`/rooms/${room.id}/personas/${p.id}`))
      .set(admin.auth)
      .expect(200);

    await send(t, alice, room.id, '@sage hello');
    const notice = await log.until(() =>
      log.notices(room.id).find((n) => n.includes('not configured')),
    );
    expect(notice).toBe(
      'Sage cannot reply: persona replies are not configured on this server (LLM_BASE_URL is not set).',
    );

    await send(t, alice, room.id, '@sage again');
    await send(t, alice, room.id, '@sage and again');
    await send(t, alice, room.id, '@sage and again!');
    await log.until(() => log.notices(room.id).find((n) => n.includes('too often')));
    await sleep(200);
    const notices = log.notices(room.id);
    expect(notices.filter((n) => n.includes('not configured'))).toHaveLength(2);
    expect(notices.filter((n) => n.includes('too often'))).toHaveLength(1); // once per window
    expect(log.all.some((e) => e.name.startsWith('persona.stream'))).toBe(false);
    expect(
      (
        await t
          .http()
          .get(api(`/rooms/${room.id}/messages`))
          .set(alice.auth)
          .expect(200)
      ).body.items.some((m: MessageDto) => m.role === 'assistant'),
    ).toBe(false);
  });
});

describe('personas with an unreachable model server (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    // A port that was free a moment ago: nothing listens there, so connections are refused.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as { port: number };
    await new Promise((resolve) => probe.close(resolve));
    t = await startApp({ ...ADMIN_ENV, LLM_BASE_URL: `http://127.0.0.1:${port}/v1` });
  });
  afterAll(() => t.close());

  it('connection refused becomes a clear system message', async () => {
    const log = new EventLog(t);
    const admin = await loginAdmin(t);
    const alice = await newUser(t);
    const p = (
      await t
        .http()
        .post(api('/personas'))
        .set(admin.auth)
        .send({ handle: 'sage', displayName: 'Sage' })
        .expect(201)
    ).body as Persona;
    const c = (
      await t
        .http()
        .post(api('/conversations'))
        .set(alice.auth)
        .send({ personaId: p.id })
        .expect(201)
    ).body;
    await send(t, alice, c.id, 'hello?');
    expect(await log.end(c.id)).toMatchObject({ finishReason: 'error', message: null });
    expect(await log.until(() => log.notices(c.id)[0])).toBe(
      'Sage could not reply: the model server could not be reached (ECONNREFUSED).',
    );
  });
});
