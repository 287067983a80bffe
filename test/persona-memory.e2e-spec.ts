import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import type { MessageDto } from '../src/messages/dto/message.dto';
import { MetricsService } from '../src/metrics/metrics.service';
import { PersonaMemoryStore } from '../src/personas/persona-memory.store';
import { SUMMARISE_INSTRUCTIONS, SUMMARY_HEADING } from '../src/personas/prompt';
import { startApp, TestApp } from './support/app';
import {
  ADMIN_ENV,
  join,
  loginAdmin,
  newRoom,
  newUser,
  NO_WRITE_LIMITS,
  post,
  TestUser,
} from './support/factories';
import { ChatRequest, FakeLlm, sleep } from './support/fake-llm';

/**
 * Persona memory (docs/personas.md, "Memory") end to end, with the fake model server: what
 * overflows PERSONA_CONTEXT_* is folded into a summary by the model, stored, refreshed
 * incrementally, and sent ahead of the recent messages; admins read and reset it. The context is
 * tiny here (4 messages, 300 characters) so a few messages overflow it.
 */
const api = (path: string) => `/api/v1${path}`;
const REPLY = 'Reply.';

interface Persona {
  id: string;
  handle: string;
  displayName: string;
  stop: string[];
}

interface Memory {
  roomId: string;
  personaId: string;
  summary: string | null;
  throughMessageId: number | null;
  foldedMessages: number;
  createdAt: string | null;
  updatedAt: string | null;
}

const isSummarise = (r: ChatRequest) => r.messages[0].content.startsWith(SUMMARISE_INSTRUCTIONS);

describe('persona memory (e2e)', () => {
  let t: TestApp;
  let fake: FakeLlm;
  let admin: TestUser;
  let alice: TestUser;
  /** Summaries the fake made so far: each summarise request answers `SUMMARY-<n>`. */
  let made = 0;

  const createPersona = async (patch: Record<string, unknown> = {}): Promise<Persona> => {
    const res = await t
      .http()
      .post(api('/personas'))
      .set(admin.auth)
      .send({ handle: `mem_${randomUUID().slice(0, 8)}`, displayName: 'Mnemosyne', ...patch })
      .expect(201);
    return res.body as Persona;
  };
  /** A public room with alice in it and `persona` attached (2 notices: joined, added). */
  const roomWith = async (persona: Persona) => {
    const room = await newRoom(t, admin);
    await join(t, alice, room.id);
    await t
      .http()
      .post(api(`/rooms/${room.id}/personas/${persona.id}`))
      .set(admin.auth)
      .expect(200);
    return room.id;
  };
  const history = async (roomId: string, as = alice) =>
    (
      await t
        .http()
        .get(api(`/rooms/${roomId}/messages?limit=200`))
        .set(as.auth)
        .expect(200)
    ).body.items as MessageDto[];
  const replies = async (roomId: string, as = alice) =>
    (await history(roomId, as)).filter((m) => m.role === 'assistant');
  /** Waits until the room holds `n` persona replies. */
  const untilReplies = async (roomId: string, n: number, as = alice) => {
    const deadline = Date.now() + 8000;
    while ((await replies(roomId, as)).length < n) {
      if (Date.now() > deadline) throw new Error(`expected ${n} replies in ${roomId}`);
      await sleep(20);
    }
  };
  /** Sends plain messages (no persona called), then `question`; waits for reply number `n`. */
  const turn = async (
    roomId: string,
    persona: Persona,
    plain: string[],
    question: string,
    n: number,
  ) => {
    const sent: MessageDto[] = [];
    for (const text of plain) sent.push(await post(t, alice, roomId, text));
    const q = await post(t, alice, roomId, `@${persona.handle} ${question}`);
    await untilReplies(roomId, n);
    return { sent, q };
  };
  const memory = async (roomId: string, personaId: string, as = admin, status = 200) =>
    (
      await t
        .http()
        .get(api(`/rooms/${roomId}/personas/${personaId}/summary`))
        .set(as.auth)
        .expect(status)
    ).body as Memory;
  const reset = (roomId: string, personaId: string, as = admin, status = 204) =>
    t
      .http()
      .delete(api(`/rooms/${roomId}/personas/${personaId}/summary`))
      .set(as.auth)
      .expect(status);
  /** The requests the fake received since `from` (an index into fake.requests). */
  const since = (from: number) => fake.requests.slice(from);
  const resets = async (roomId: string) =>
    (
      (
        await t
          .http()
          .get(api(`/admin/audit?action=persona.summary.reset&limit=200`))
          .set(admin.auth)
          .expect(200)
      ).body.items as { roomId: string; targetId: string; actorId: string; details: object }[]
    ).filter((e) => e.roomId === roomId);
  const summariesCounted = async (handle: string, outcome: string) => {
    const metric = await t.app.get(MetricsService).personaSummaries.get();
    return (
      metric.values.find((v) => v.labels.persona === handle && v.labels.outcome === outcome)
        ?.value ?? 0
    );
  };

  beforeAll(async () => {
    fake = await FakeLlm.start();
    fake.respond = (req) =>
      isSummarise(req) ? { chunks: [`SUMMARY-${++made}`] } : { chunks: [REPLY] };
    t = await startApp({
      ...ADMIN_ENV,
      ...NO_WRITE_LIMITS,
      LLM_BASE_URL: fake.url,
      LLM_MODEL: 'default-model',
      LLM_TIMEOUT_MS: '2000',
      PERSONA_STREAM_FLUSH_MS: '20',
      PERSONA_TRIGGER_RATE_LIMIT: '1000',
      PERSONA_CONTEXT_MESSAGES: '4',
      PERSONA_CONTEXT_CHARS: '300',
      PERSONA_SUMMARY_MAX_CHARS: '120',
      PERSONA_SUMMARY_BATCH_CHARS: '2000',
    });
    admin = await loginAdmin(t);
    alice = await newUser(t);
  });
  afterAll(async () => {
    await t.close();
    await fake.close();
  });

  it('makes no summary while the history fits; once it overflows, folds the older messages and sends the summary ahead of the recent ones; refreshes with only the new overflow', async () => {
    const p = await createPersona();
    const roomId = await roomWith(p);

    // 2 notices (alice joined, the persona was added) + 1 + the question = 4 messages =
    // PERSONA_CONTEXT_MESSAGES: it fits.
    let from = fake.requests.length;
    const one = await turn(roomId, p, ['first-a'], 'q-one', 1);
    expect(since(from)).toHaveLength(1);
    expect(since(from)[0].messages.map((m) => m.content)).toEqual([
      expect.any(String), // the system prompt
      `${alice.username} joined`,
      `${p.displayName} (@${p.handle}) was added to the room`,
      `${alice.username}: first-a`,
      `${alice.username}: @${p.handle} q-one`,
    ]);
    expect(await memory(roomId, p.id)).toEqual({
      roomId,
      personaId: p.id,
      summary: null,
      throughMessageId: null,
      foldedMessages: 0,
      createdAt: null,
      updatedAt: null,
    });

    // 8 messages: the newest 4 are shown, the 4 before are folded into a first summary.
    from = fake.requests.length;
    await turn(roomId, p, ['second-a', 'second-b'], 'q-two', 2);
    const [summarise, reply] = since(from);
    expect(since(from)).toHaveLength(2);
    expect(isSummarise(summarise)).toBe(true);
    expect(summarise.model).toBe('default-model');
    expect(summarise.stop).toBeUndefined();
    expect(summarise.messages[1].content).toBe(
      [
        'Summary so far:',
        '(none yet)',
        '',
        'New messages, oldest first:',
        `(notice) ${alice.username} joined`,
        `(notice) ${p.displayName} (@${p.handle}) was added to the room`,
        `${alice.username}: first-a`,
        `${alice.username}: @${p.handle} q-one`,
      ].join('\n'),
    );
    const first = `SUMMARY-${made}`;
    expect(reply.messages.map((m) => [m.role, m.content])).toEqual([
      ['system', expect.stringContaining(`@${p.handle}`)],
      ['system', `${SUMMARY_HEADING}\n${first}`],
      ['assistant', REPLY],
      ['user', `${alice.username}: second-a`],
      ['user', `${alice.username}: second-b`],
      ['user', `${alice.username}: @${p.handle} q-two`],
    ]);
    const stored = await memory(roomId, p.id);
    expect(stored).toMatchObject({
      summary: first,
      throughMessageId: one.q.id,
      foldedMessages: 4,
    });
    expect(stored.updatedAt).not.toBeNull();

    // Refresh: only what overflowed since (the reply, second-a, second-b) is folded, into it.
    from = fake.requests.length;
    await turn(roomId, p, ['third-a'], 'q-three', 3);
    const [refresh, next] = since(from);
    expect(isSummarise(refresh)).toBe(true);
    const folded = refresh.messages[1].content;
    expect(folded).toBe(
      [
        'Summary so far:',
        first,
        '',
        'New messages, oldest first:',
        `${p.handle}: ${REPLY}`,
        `${alice.username}: second-a`,
        `${alice.username}: second-b`,
      ].join('\n'),
    );
    expect(folded).not.toContain('first-a');
    const second = `SUMMARY-${made}`;
    expect(next.messages.slice(1, 3).map((m) => m.content)).toEqual([
      `${SUMMARY_HEADING}\n${second}`,
      `${alice.username}: @${p.handle} q-two`,
    ]);
    const refreshed = await memory(roomId, p.id);
    expect(refreshed).toMatchObject({ summary: second, foldedMessages: 7 });
    expect(refreshed.throughMessageId).toBeGreaterThan(stored.throughMessageId!);
    expect(refreshed.createdAt).toBe(stored.createdAt);
    expect(await summariesCounted(p.handle, 'saved')).toBe(2);
  });

  it('folds what overflows the character budget too', async () => {
    const p = await createPersona();
    const roomId = await roomWith(p);
    const from = fake.requests.length;
    // 3 messages (fits the count), but the long one does not fit PERSONA_CONTEXT_CHARS.
    await turn(roomId, p, ['L'.repeat(290)], 'short', 1);
    const [summarise, reply] = since(from);
    expect(isSummarise(summarise)).toBe(true);
    expect(summarise.messages[1].content).toContain(`${alice.username}: ${'L'.repeat(290)}`);
    expect(reply.messages.slice(1).map((m) => m.content)).toEqual([
      `${SUMMARY_HEADING}\nSUMMARY-${made}`,
      `${alice.username}: @${p.handle} short`,
    ]);
  });

  it('cuts a summary longer than PERSONA_SUMMARY_MAX_CHARS', async () => {
    const p = await createPersona();
    const roomId = await roomWith(p);
    fake.enqueue({ chunks: ['x'.repeat(100), 'y'.repeat(100)] });
    await turn(roomId, p, ['a', 'b', 'c'], 'long summary', 1);
    expect((await memory(roomId, p.id)).summary).toBe('x'.repeat(100) + 'y'.repeat(20));
  });

  it('a failed summarise request does not fail the reply: it goes with the recent messages', async () => {
    const p = await createPersona();
    const roomId = await roomWith(p);
    const from = fake.requests.length;
    fake.enqueue({ status: 500 });
    await turn(roomId, p, ['a', 'b', 'c'], 'still answered?', 1);
    const [summarise, reply] = since(from);
    expect(isSummarise(summarise)).toBe(true);
    expect(reply.messages.map((m) => m.content)).toEqual([
      expect.any(String),
      `${alice.username}: a`,
      `${alice.username}: b`,
      `${alice.username}: c`,
      `${alice.username}: @${p.handle} still answered?`,
    ]);
    expect((await replies(roomId))[0]).toMatchObject({ content: REPLY, finishReason: 'stop' });
    expect((await memory(roomId, p.id)).summary).toBeNull();
    expect(await summariesCounted(p.handle, 'failed')).toBe(1);
    // No notice in the room about it: memory is the persona's business.
    expect((await history(roomId)).filter((m) => m.role === 'system')).toHaveLength(2);

    // The next reply folds what overflowed (the older summary failed, nothing was lost).
    const again = fake.requests.length;
    await turn(roomId, p, [], 'and now?', 2);
    expect(since(again)[0].messages[1].content).toContain(`${alice.username}: a`);
    expect((await memory(roomId, p.id)).summary).toBe(`SUMMARY-${made}`);
  });

  it("a summary's tokens count for the reply's person, room and persona; a used-up budget stops the reply before the summary", async () => {
    const usage = async (personaId: string) =>
      (
        await t
          .http()
          .get(api(`/admin/usage?groupBy=persona&personaId=${personaId}`))
          .set(admin.auth)
          .expect(200)
      ).body.items as Record<string, unknown>[];
    const p = await createPersona({ dailyTokenBudget: 50 });
    const roomId = await roomWith(p);
    const from = fake.requests.length;
    fake.enqueue(
      { chunks: ['SUMMARY-x'], usage: { prompt_tokens: 40, completion_tokens: 8 } },
      { chunks: [REPLY], usage: { prompt_tokens: 3, completion_tokens: 1 } },
    );
    await turn(roomId, p, ['a', 'b', 'c'], 'what did we say?', 1);
    expect(since(from).map(isSummarise)).toEqual([true, false]);
    expect(await usage(p.id)).toEqual([
      expect.objectContaining({ generations: 1, promptTokens: 43, completionTokens: 9 }),
    ]);
    const metric = await t.app.get(MetricsService).personaTokens.get();
    const summaryTokens = metric.values.filter(
      (v) => v.labels.persona === p.handle && v.labels.outcome === 'summary',
    );
    expect(summaryTokens.map((v) => [v.labels.kind, v.value]).sort()).toEqual([
      ['completion', 8],
      ['prompt', 40],
    ]);

    // 52 ≥ 50: the next reply, which would need a summary first, asks the model nothing.
    const before = fake.requests.length;
    for (const text of ['d', 'e', 'f']) await post(t, alice, roomId, text);
    await post(t, alice, roomId, `@${p.handle} more?`);
    const deadline = Date.now() + 5000;
    const refused = () =>
      history(roomId).then((h) => h.some((m) => m.content?.includes('[BUDGET_EXHAUSTED:persona]')));
    while (!(await refused())) {
      if (Date.now() > deadline) throw new Error('no budget notice');
      await sleep(20);
    }
    await sleep(200);
    expect(fake.requests.length).toBe(before);
  });

  it('a room deleted while the summary is made gets no reply (the reply is not started)', async () => {
    const p = await createPersona();
    const roomId = await roomWith(p);
    const from = fake.requests.length;
    fake.enqueue({ chunks: ['SUMMARY-slow'], delayMs: 400 });
    for (const text of ['a', 'b', 'c']) await post(t, alice, roomId, text);
    await post(t, alice, roomId, `@${p.handle} are you there?`);
    await fake.waitForRequests(from + 1);
    expect(isSummarise(fake.requests[from])).toBe(true);
    await t
      .http()
      .delete(api(`/rooms/${roomId}`))
      .set(admin.auth)
      .expect(204);
    await sleep(800);
    expect(since(from)).toHaveLength(1);
  });

  it('admins read and reset a summary (audited); members get 403; a reset is not undone by a refresh in flight', async () => {
    const p = await createPersona();
    const roomId = await roomWith(p);
    await turn(roomId, p, ['a', 'b', 'c'], 'one', 1);
    expect((await memory(roomId, p.id)).summary).toBe(`SUMMARY-${made}`);

    await memory(roomId, p.id, alice, 403);
    await reset(roomId, p.id, alice, 403);
    await memory(roomId, randomUUID(), admin, 404);
    await t
      .http()
      .get(api(`/rooms/${roomId}/personas/not-a-uuid/summary`))
      .set(admin.auth)
      .expect(400);

    await reset(roomId, p.id);
    expect((await memory(roomId, p.id)).summary).toBeNull();
    await reset(roomId, p.id); // idempotent, and audited once (there was nothing the 2nd time)
    const audited = await resets(roomId);
    expect(audited).toEqual([
      expect.objectContaining({
        targetId: p.id,
        actorId: admin.id,
        details: expect.objectContaining({ handle: p.handle }) as object,
      }),
    ]);

    // A summary exists again; a refresh starts (slow), the admin resets meanwhile: the
    // refresh made from the old summary must not bring it back.
    await turn(roomId, p, ['d'], 'two', 2);
    const before = await memory(roomId, p.id);
    expect(before.summary).toBe(`SUMMARY-${made}`);
    const from = fake.requests.length;
    fake.enqueue({ chunks: ['LATE-SUMMARY'], delayMs: 400 });
    await post(t, alice, roomId, `@${p.handle} three`);
    await fake.waitForRequests(from + 1);
    expect(isSummarise(fake.requests[from])).toBe(true);
    await reset(roomId, p.id);
    await untilReplies(roomId, 3);
    // The reply still had the summary made for it…
    expect(fake.requests[from + 1].messages[1].content).toBe(`${SUMMARY_HEADING}\nLATE-SUMMARY`);
    // …but it was not stored over the reset.
    expect((await memory(roomId, p.id)).summary).toBeNull();
    expect(await summariesCounted(p.handle, 'superseded')).toBe(1);
    expect(await resets(roomId)).toHaveLength(2);
  });

  it("a conversation's summary is its owner's alone (admins get 404), and its reset is not audited", async () => {
    const p = await createPersona();
    const conv = (
      await t
        .http()
        .post(api('/conversations'))
        .set(alice.auth)
        .send({ personaId: p.id })
        .expect(201)
    ).body as { id: string };
    // Every message is answered: after 3 questions the history (5+) overflows 4 messages.
    for (let n = 1; n <= 3; n++) {
      await post(t, alice, conv.id, `conv-${n}`);
      await untilReplies(conv.id, n);
    }
    const mine = await memory(conv.id, p.id, alice);
    expect(mine.summary).toBe(`SUMMARY-${made}`);
    await memory(conv.id, p.id, admin, 404);
    await reset(conv.id, p.id, admin, 404);
    expect((await memory(conv.id, p.id, alice)).summary).not.toBeNull();
    await reset(conv.id, p.id, alice);
    expect((await memory(conv.id, p.id, alice)).summary).toBeNull();
    expect(await resets(conv.id)).toEqual([]);
  });

  it('a persona’s stop list reaches its requests (not the summarise ones), and is validated', async () => {
    const p = await createPersona({ stop: ['###', '\nUser:'] });
    expect(p.stop).toEqual(['###', '\nUser:']);
    const roomId = await roomWith(p);
    const from = fake.requests.length;
    await turn(roomId, p, ['a', 'b', 'c'], 'stop?', 1);
    const [summarise, reply] = since(from);
    expect(isSummarise(summarise)).toBe(true);
    expect(summarise.stop).toBeUndefined();
    expect(reply.stop).toEqual(['###', '\nUser:']);

    const bad = async (stop: unknown) =>
      t
        .http()
        .patch(api(`/personas/${p.id}`))
        .set(admin.auth)
        .send({ stop })
        .expect(400);
    await bad(['a', 'b', 'c', 'd', 'e']);
    await bad(['x'.repeat(33)]);
    await bad(['']);
    await bad(['same', 'same']);
    await bad('###');
    await bad(null);
    await t
      .http()
      .post(api('/personas'))
      .set(admin.auth)
      .send({ handle: `mem_${randomUUID().slice(0, 8)}`, displayName: 'X', stop: [1] })
      .expect(400);

    const cleared = await t
      .http()
      .patch(api(`/personas/${p.id}`))
      .set(admin.auth)
      .send({ stop: [] })
      .expect(200);
    expect(cleared.body.stop).toEqual([]);
    const after = fake.requests.length;
    await turn(roomId, p, [], 'no stop', 2);
    expect(since(after).find((r) => !isSummarise(r))!.stop).toBeUndefined();
    // Users see the stop list like the other settings.
    const seen = await t
      .http()
      .get(api(`/personas/${p.id}`))
      .set(alice.auth)
      .expect(200);
    expect(seen.body.stop).toEqual([]);
  });

  it('the store only moves a summary forward, from the version it was made from', async () => {
    const p = await createPersona();
    const roomId = await roomWith(p);
    const store = t.app.get(PersonaMemoryStore);
    const w = { roomId, personaId: p.id, folded: 1 };
    expect(await store.save({ ...w, summary: 'v1', throughMessageId: 10, basedOn: null })).toBe(
      true,
    );
    // Two refreshes made from v1 (two instances): the first wins, the second is dropped.
    expect(await store.save({ ...w, summary: 'v2', throughMessageId: 20, basedOn: 10 })).toBe(true);
    expect(await store.save({ ...w, summary: 'v2b', throughMessageId: 30, basedOn: 10 })).toBe(
      false,
    );
    // Never backwards, and a second first version does not replace one.
    expect(await store.save({ ...w, summary: 'old', throughMessageId: 15, basedOn: 20 })).toBe(
      false,
    );
    expect(await store.save({ ...w, summary: 'v1b', throughMessageId: 40, basedOn: null })).toBe(
      false,
    );
    expect(await store.get(roomId, p.id)).toMatchObject({
      summary: 'v2',
      throughMessageId: 20,
      foldedMessages: 2,
    });
    // A room deleted meanwhile: the write loses, quietly.
    expect(
      await store.save({
        ...w,
        roomId: randomUUID(),
        summary: 'x',
        throughMessageId: 1,
        basedOn: null,
      }),
    ).toBe(false);
    // Deleting the room or the persona takes the summary with it.
    await t
      .http()
      .delete(api(`/personas/${p.id}`))
      .set(admin.auth)
      .expect(204);
    const rows = await t.app
      .get(DataSource)
      .query<unknown[]>(`SELECT 1 FROM persona_summaries WHERE persona_id = $1`, [p.id]);
    expect(rows).toEqual([]);
  });
});

// An app of its own, after the suite above closed its own.
describe('persona memory switched off (e2e)', () => {
  it('with PERSONA_SUMMARY_ENABLED=false the older history is just left out', async () => {
    const fake = await FakeLlm.start();
    const off = await startApp({
      ...ADMIN_ENV,
      LLM_BASE_URL: fake.url,
      PERSONA_CONTEXT_MESSAGES: '2',
      PERSONA_SUMMARY_ENABLED: 'false',
    });
    try {
      const root = await loginAdmin(off);
      const handle = `mem_${randomUUID().slice(0, 8)}`;
      const persona = await off
        .http()
        .post(api('/personas'))
        .set(root.auth)
        .send({ handle, displayName: 'Off' })
        .expect(201);
      const room = await newRoom(off, root);
      await off
        .http()
        .post(api(`/rooms/${room.id}/personas/${persona.body.id}`))
        .set(root.auth)
        .expect(200);
      const from = fake.requests.length;
      await post(off, root, room.id, 'one');
      await post(off, root, room.id, `@${handle} two`);
      await fake.waitForRequests(from + 1);
      await sleep(200); // nothing else comes
      expect(fake.requests.slice(from)).toHaveLength(1);
      expect(fake.requests[from].messages.map((m) => m.content).slice(1)).toEqual([
        `${root.username}: one`,
        `${root.username}: @${handle} two`,
      ]);
    } finally {
      await off.close();
      await fake.close();
    }
  });
});

describe('summaries made at once (e2e)', () => {
  // Before: a summary was checked against the budgets (nothing reserved) and counted after it
  // was made, so three personas called at once with one token left made three summaries.
  it("see each other's reservation: with one token of user budget left, one summary is asked for", async () => {
    const fake = await FakeLlm.start();
    fake.respond = (req) =>
      isSummarise(req)
        ? { chunks: ['SUMMARY'], delayMs: 200, usage: { prompt_tokens: 40, completion_tokens: 8 } }
        : { chunks: [REPLY] };
    const t = await startApp({
      ...ADMIN_ENV,
      ...NO_WRITE_LIMITS,
      LLM_BASE_URL: fake.url,
      LLM_MODEL: 'default-model',
      PERSONA_STREAM_FLUSH_MS: '20',
      PERSONA_TRIGGER_RATE_LIMIT: '1000',
      PERSONA_CONTEXT_MESSAGES: '4',
      PERSONA_CONTEXT_CHARS: '300',
      PERSONA_SUMMARY_MAX_CHARS: '120',
      PERSONA_DAILY_TOKENS_USER: '1',
    });
    try {
      const admin = await loginAdmin(t);
      const alice = await newUser(t);
      const room = await newRoom(t, admin);
      await join(t, alice, room.id);
      const handles: string[] = [];
      for (let i = 0; i < 3; i++) {
        const p = (
          await t
            .http()
            .post(api('/personas'))
            .set(admin.auth)
            .send({ handle: `sum_${randomUUID().slice(0, 8)}`, displayName: `S${i}` })
            .expect(201)
        ).body as Persona;
        await t
          .http()
          .post(api(`/rooms/${room.id}/personas/${p.id}`))
          .set(admin.auth)
          .expect(200);
        handles.push(p.handle);
      }
      for (const text of ['a', 'b', 'c', 'd']) await post(t, alice, room.id, text);
      await post(t, alice, room.id, handles.map((h) => `@${h}`).join(' ') + ' recap?');
      const deadline = Date.now() + 8000;
      const refused = async () =>
        (
          (
            await t
              .http()
              .get(api(`/rooms/${room.id}/messages?limit=200`))
              .set(alice.auth)
              .expect(200)
          ).body.items as MessageDto[]
        ).some((m) => m.content?.includes('[BUDGET_EXHAUSTED:user]'));
      while (!(await refused())) {
        if (Date.now() > deadline) throw new Error('no budget notice');
        await sleep(20);
      }
      // The summary admitted is made and settled (its reply then refused): the usage shows the
      // model's figures once it is, whatever the machine's speed.
      type Sum = { generations: number; promptTokens: number; completionTokens: number };
      const sum = async () =>
        (
          (
            await t
              .http()
              .get(api(`/admin/usage?groupBy=user&userId=${alice.id}`))
              .set(admin.auth)
              .expect(200)
          ).body.items as Sum[]
        )[0];
      while ((await sum())?.promptTokens !== 40) {
        if (Date.now() > deadline + 8000) throw new Error('the summary was not settled');
        await sleep(20);
      }
      await sleep(300); // nothing else is coming: the other two were refused before any request
      expect(fake.requests.filter(isSummarise)).toHaveLength(1);
      expect(fake.requests.filter((r) => !isSummarise(r))).toHaveLength(0);
      expect(await sum()).toMatchObject({ generations: 0, promptTokens: 40, completionTokens: 8 });
    } finally {
      await t.close();
      await fake.close();
    }
  });
});
