import { EventEmitter2 } from '@nestjs/event-emitter';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import type { PersonaStreamEnd } from '../src/chat/contract';
import type { MessageDto } from '../src/messages/dto/message.dto';
import { MetricsService } from '../src/metrics/metrics.service';
import { DIRECTOR_ID } from '../src/personas/persona-usage';
import { startApp, TestApp } from './support/app';
import {
  ADMIN_ENV,
  NO_WRITE_LIMITS,
  join,
  loginAdmin,
  newRoom,
  newUser,
  send,
  TestUser,
} from './support/factories';
import { FakeLlm, sleep, type ChatRequest, type FakeUsage } from './support/fake-llm';

/**
 * Issue 16 item 3: token usage of persona replies (the fake model server's `usage`, else the
 * documented estimate), stored on the message and summed per user, room, persona and UTC day
 * (GET /api/v1/admin/usage), and daily budgets that refuse at the limit with one notice and
 * reset with the day.
 */
const api = (path: string) => `/api/v1${path}`;

/** The documented estimate: one token per 4 characters, rounded up. */
const estimate = (text: string) => Math.ceil(text.length / 4);
/** The estimate of a prompt as sent to the model: its message texts joined by newlines. */
const promptEstimate = (req: ChatRequest) =>
  estimate(req.messages.map((m) => m.content).join('\n'));

interface UsageItem {
  key: string;
  name?: string | null;
  generations: number;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

/** A booted app with a fake model server, and what its rooms saw. */
class World {
  t!: TestApp;
  fake!: FakeLlm;
  admin!: TestUser;
  readonly ends: PersonaStreamEnd[] = [];
  readonly created: MessageDto[] = [];
  private seq = 0;

  async start(env: Record<string, string>): Promise<void> {
    this.fake = await FakeLlm.start();
    this.t = await startApp({
      ...ADMIN_ENV,
      ...NO_WRITE_LIMITS,
      LLM_BASE_URL: this.fake.url,
      LLM_MODEL: 'default-model',
      PERSONA_STREAM_FLUSH_MS: '20',
      PERSONA_TRIGGER_RATE_LIMIT: '1000',
      ...env,
    });
    const emitter = this.t.app.get(EventEmitter2);
    emitter.on('persona.stream.end', (e: PersonaStreamEnd) => this.ends.push(e));
    emitter.on('message.created', (e: { message: MessageDto }) => this.created.push(e.message));
    this.admin = await loginAdmin(this.t);
  }

  async stop(): Promise<void> {
    await this.t?.close();
    await this.fake?.close();
  }

  get db(): DataSource {
    return this.t.app.get(DataSource);
  }

  async persona(patch: Record<string, unknown> = {}): Promise<{ id: string; handle: string }> {
    const res = await this.t
      .http()
      .post(api('/personas'))
      .set(this.admin.auth)
      .send({
        handle: `u_${++this.seq}_${randomUUID().slice(0, 6)}`,
        displayName: `Bot ${this.seq}`,
        ...patch,
      })
      .expect(201);
    return res.body as { id: string; handle: string; dailyTokenBudget: number | null };
  }

  /** A public room with these users and personas in it. */
  async room(users: TestUser[], personas: { id: string }[]): Promise<string> {
    const room = await newRoom(this.t, this.admin);
    for (const u of users) await join(this.t, u, room.id);
    for (const p of personas)
      await this.t
        .http()
        .post(api(`/rooms/${room.id}/personas/${p.id}`))
        .set(this.admin.auth)
        .expect(200);
    return room.id;
  }

  /** `user` calls the persona in the room; resolves with the reply's end. */
  async ask(user: TestUser, roomId: string, handle: string): Promise<PersonaStreamEnd> {
    const before = this.endsIn(roomId).length;
    await send(this.t, user, roomId, `@${handle} how much does this cost?`);
    return this.until(() => this.endsIn(roomId)[before]);
  }

  endsIn(roomId: string): PersonaStreamEnd[] {
    return this.ends.filter((e) => e.roomId === roomId);
  }

  notices(roomId: string): string[] {
    return this.created
      .filter((m) => m.roomId === roomId && m.role === 'system')
      .map((m) => m.content ?? '');
  }

  async until<T>(probe: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = probe();
      if (value) return value;
      if (Date.now() > deadline) throw new Error('timed out');
      await sleep(10);
    }
  }

  async usage(query: string, user: TestUser = this.admin, status = 200) {
    const res = await this.t
      .http()
      .get(api(`/admin/usage?${query}`))
      .set(user.auth)
      .expect(status);
    return res.body as { groupBy: string; items: UsageItem[]; nextCursor: string | null };
  }

  /** Moves a user's usage rows one day back: their "today" starts afresh (no clock needed). */
  async yesterday(userId: string): Promise<void> {
    await this.db.query(`UPDATE persona_usage_daily SET day = day - 1 WHERE user_id = $1`, [
      userId,
    ]);
  }
}

const today = () => new Date().toISOString().slice(0, 10);
const dayBefore = (day: string) =>
  new Date(Date.parse(`${day}T00:00:00Z`) - 86_400_000).toISOString().slice(0, 10);

describe('persona usage and budgets (e2e)', () => {
  const w = new World();
  beforeAll(() => w.start({ PERSONA_DAILY_TOKENS_USER: '40' }));
  afterAll(() => w.stop());

  it("stores the fake server's usage on the reply, and nothing on people's messages", async () => {
    const alice = await newUser(w.t);
    const p = await w.persona();
    const roomId = await w.room([alice], [p]);
    w.fake.enqueue({
      chunks: ['Two', ' cents.'],
      usage: { prompt_tokens: 23, completion_tokens: 4 },
    });
    const end = await w.ask(alice, roomId, p.handle);
    expect(end.finishReason).toBe('stop');
    expect(end.message!.usage).toEqual({ promptTokens: 23, completionTokens: 4, estimated: false });
    // The request asked for it, and history shows it as stored.
    expect(w.fake.requests.at(-1)!.stream_options).toEqual({ include_usage: true });
    const history = await w.t
      .http()
      .get(api(`/rooms/${roomId}/messages`))
      .set(alice.auth)
      .expect(200);
    const items = history.body.items as MessageDto[];
    const reply = items.find((m) => m.role === 'assistant')!;
    expect(reply.usage).toEqual({ promptTokens: 23, completionTokens: 4, estimated: false });
    for (const m of items.filter((m) => m.role !== 'assistant'))
      expect(m).not.toHaveProperty('usage');
    const [row] = await w.db.query<{ prompt_tokens: number; completion_tokens: number }[]>(
      `SELECT prompt_tokens, completion_tokens, usage_estimated FROM messages WHERE id = $1`,
      [reply.id],
    );
    expect(row).toEqual({ prompt_tokens: 23, completion_tokens: 4, usage_estimated: false });
  });

  it('estimates one token per 4 characters (rounded up) when the server sends no usage', async () => {
    const bob = await newUser(w.t);
    const p = await w.persona();
    const roomId = await w.room([bob], [p]);
    w.fake.enqueue({ chunks: ['abcde', 'fghi', 'j'], usage: false });
    const end = await w.ask(bob, roomId, p.handle);
    const req = w.fake.requests.at(-1)!;
    expect(end.message!.content).toBe('abcdefghij');
    expect(end.message!.usage).toEqual({
      promptTokens: promptEstimate(req),
      completionTokens: 3, // ceil(10 / 4)
      estimated: true,
    });
    expect(promptEstimate(req)).toBeGreaterThan(0);
    const { items } = await w.usage(`groupBy=persona&personaId=${p.id}`);
    expect(items).toEqual([
      {
        key: p.id,
        name: p.handle,
        generations: 1,
        promptTokens: promptEstimate(req),
        completionTokens: 3,
        totalTokens: promptEstimate(req) + 3,
      },
    ]);
  });

  it('a reply that failed with no text saves nothing but still counts (its prompt, estimated)', async () => {
    const carol = await newUser(w.t);
    const p = await w.persona();
    const roomId = await w.room([carol], [p]);
    w.fake.enqueue({ status: 500 });
    const end = await w.ask(carol, roomId, p.handle);
    expect(end).toMatchObject({ finishReason: 'error', message: null });
    const { items } = await w.usage(`groupBy=user&userId=${carol.id}`);
    expect(items).toEqual([
      expect.objectContaining({
        key: carol.id,
        name: carol.username,
        generations: 1,
        promptTokens: promptEstimate(w.fake.requests.at(-1)!),
        completionTokens: 0,
      }),
    ]);
  });

  it("sums per user, room, persona and day match the fake server's usage", async () => {
    const [u1, u2] = [await newUser(w.t), await newUser(w.t)];
    const [p1, p2] = [await w.persona(), await w.persona()];
    const r1 = await w.room([u1, u2], [p1, p2]);
    const r2 = await w.room([u1], [p1]);
    // Who asks whom where, and what the model server says each reply cost.
    const plan: [TestUser, string, { id: string; handle: string }, number, number][] = [
      [u1, r1, p1, 5, 2],
      [u1, r1, p2, 7, 3],
      [u2, r1, p1, 6, 1],
      [u1, r2, p1, 4, 4],
      [u2, r1, p2, 9, 2],
    ];
    const stored: MessageDto[] = [];
    for (const [user, room, persona, prompt, completion] of plan) {
      w.fake.enqueue({
        chunks: ['ok'],
        usage: { prompt_tokens: prompt, completion_tokens: completion },
      });
      stored.push((await w.ask(user, room, persona.handle)).message!);
    }
    const expected = (pick: (row: (typeof plan)[number]) => string) => {
      const sums = new Map<string, UsageItem>();
      for (const row of plan) {
        const key = pick(row);
        const s = sums.get(key) ?? {
          key,
          generations: 0,
          promptTokens: 0,
          completionTokens: 0,
          totalTokens: 0,
        };
        s.generations++;
        s.promptTokens += row[3];
        s.completionTokens += row[4];
        s.totalTokens += row[3] + row[4];
        sums.set(key, s);
      }
      return [...sums.values()].sort((a, b) => (a.key < b.key ? -1 : 1));
    };
    const strip = (items: UsageItem[]) => items.map(({ name: _name, ...rest }) => rest);
    // Stored on the messages, exactly what the server said.
    expect(stored.map((m) => m.usage)).toEqual(
      plan.map(([, , , prompt, completion]) => ({
        promptTokens: prompt,
        completionTokens: completion,
        estimated: false,
      })),
    );
    // Per persona, in the rooms of this test (p1 and p2 are new: nothing else counts for them).
    for (const p of [p1, p2]) {
      const { items } = await w.usage(`groupBy=persona&personaId=${p.id}`);
      expect(strip(items)).toEqual(
        expected(([, , persona]) => persona.id).filter((x) => x.key === p.id),
      );
      expect(items[0].name).toBe(p.handle);
    }
    // Per user in r1, per room for u1, per day for p1.
    expect(strip((await w.usage(`groupBy=user&roomId=${r1}`)).items)).toEqual(
      expected(([user, room]) => (room === r1 ? user.id : '')).filter((x) => x.key !== ''),
    );
    const rooms = (await w.usage(`groupBy=room&userId=${u1.id}`)).items;
    expect(strip(rooms)).toEqual(
      expected(([user, room]) => (user === u1 ? room : '')).filter((x) => x.key !== ''),
    );
    const day = today();
    expect(
      strip((await w.usage(`groupBy=day&personaId=${p1.id}&from=${day}&to=${day}`)).items),
    ).toEqual(expected(([, , persona]) => (persona === p1 ? day : '')).filter((x) => x.key !== ''));
    expect((await w.usage(`groupBy=day&personaId=${p1.id}&to=${dayBefore(day)}`)).items).toEqual(
      [],
    );
    // Keyset pages: one user at a time.
    const first = await w.usage(`groupBy=user&roomId=${r1}&limit=1`);
    expect(first.items).toHaveLength(1);
    const second = await w.usage(`groupBy=user&roomId=${r1}&limit=1&after=${first.nextCursor}`);
    expect(second.items).toHaveLength(1);
    expect(second.nextCursor).toBeNull();
    expect([first.items[0].key, second.items[0].key].sort()).toEqual([u1.id, u2.id].sort());
  });

  it('the user budget refuses at the limit with one notice and the code, and resets the next day', async () => {
    const [dave, eve] = [await newUser(w.t), await newUser(w.t)];
    const p = await w.persona();
    const roomId = await w.room([dave, eve], [p]);
    // 20 + 19 = 39 tokens: below the 40 of PERSONA_DAILY_TOKENS_USER, so one more starts.
    w.fake.enqueue(
      { chunks: ['a'], usage: { prompt_tokens: 15, completion_tokens: 5 } },
      { chunks: ['b'], usage: { prompt_tokens: 15, completion_tokens: 4 } },
      { chunks: ['c'], usage: { prompt_tokens: 15, completion_tokens: 5 } },
    );
    for (let i = 0; i < 3; i++) await w.ask(dave, roomId, p.handle);
    expect((await w.usage(`userId=${dave.id}`)).items[0].totalTokens).toBe(59);

    // 59 ≥ 40: refused before the model is asked, with one notice naming the budget.
    const requests = w.fake.requests.length;
    await send(w.t, dave, roomId, `@${p.handle} one more?`);
    const notice = await w.until(() =>
      w.notices(roomId).find((n) => n.includes('BUDGET_EXHAUSTED')),
    );
    expect(notice).toMatch(
      new RegExp(
        `^Bot \\d+ will not reply: @${dave.username} has used up today's user token budget ` +
          `\\(40 tokens\\)\\. It resets at 00:00 UTC, in (\\d+ h )?\\d+ min\\. \\[BUDGET_EXHAUSTED:user\\]$`,
      ),
    );
    // Asking again is refused too, without a second notice. Eve's budget is hers: her question,
    // queued behind Dave's (one queue per persona and room), is answered once his was refused.
    await send(w.t, dave, roomId, `@${p.handle} and now?`);
    w.fake.enqueue({ chunks: ['for eve'], usage: { prompt_tokens: 15, completion_tokens: 1 } });
    expect((await w.ask(eve, roomId, p.handle)).message!.content).toBe('for eve');
    expect(w.fake.requests.length).toBe(requests + 1);
    expect(w.notices(roomId).filter((n) => n.includes('BUDGET_EXHAUSTED'))).toEqual([notice]);

    // The next day: the budget is whole again.
    await w.yesterday(dave.id);
    w.fake.enqueue({ chunks: ['new day'], usage: { prompt_tokens: 15, completion_tokens: 2 } });
    expect((await w.ask(dave, roomId, p.handle)).message!.content).toBe('new day');
    expect(w.fake.requests.length).toBe(requests + 2);
    expect(w.notices(roomId).filter((n) => n.includes('BUDGET_EXHAUSTED'))).toHaveLength(1);
    expect(w.endsIn(roomId)).toHaveLength(5);

    const days = (await w.usage(`groupBy=day&userId=${dave.id}`)).items;
    expect(days.map((d) => [d.key, d.generations, d.totalTokens])).toEqual([
      [dayBefore(today()), 3, 59],
      [today(), 1, 17],
    ]);
  });

  it("a persona's own budget overrides the default; 0 is unlimited", async () => {
    const erin = await newUser(w.t);
    const p = await w.persona({ dailyTokenBudget: 10 });
    expect(p).toMatchObject({ dailyTokenBudget: 10 });
    const roomId = await w.room([erin], [p]);
    w.fake.enqueue({ chunks: ['x'], usage: { prompt_tokens: 8, completion_tokens: 2 } });
    await w.ask(erin, roomId, p.handle);
    await send(w.t, erin, roomId, `@${p.handle} again`);
    const notice = await w.until(() =>
      w.notices(roomId).find((n) => n.includes('BUDGET_EXHAUSTED')),
    );
    expect(notice).toMatch(
      /^Bot \d+ will not reply: Bot \d+ has used up today's persona token budget \(10 tokens\)/,
    );
    expect(notice).toMatch(/\[BUDGET_EXHAUSTED:persona\]$/);

    const patched = await w.t
      .http()
      .patch(api(`/personas/${p.id}`))
      .set(w.admin.auth)
      .send({ dailyTokenBudget: 0 })
      .expect(200);
    expect(patched.body.dailyTokenBudget).toBe(0);
    w.fake.enqueue({ chunks: ['free'], usage: { prompt_tokens: 8, completion_tokens: 1 } });
    expect((await w.ask(erin, roomId, p.handle)).message!.content).toBe('free');
    await w.t
      .http()
      .patch(api(`/personas/${p.id}`))
      .set(w.admin.auth)
      .send({ dailyTokenBudget: -1 })
      .expect(400);
    await w.t
      .http()
      .patch(api(`/personas/${p.id}`))
      .set(w.admin.auth)
      .send({ dailyTokenBudget: null })
      .expect(200);
  });

  it("the server's token counts are checked: a bad one gives the estimate, and the reply is still saved and announced", async () => {
    const p = await w.persona();
    const bad: FakeUsage[] = [
      { prompt_tokens: -500, completion_tokens: 3 },
      { prompt_tokens: 5, completion_tokens: -1 },
      { prompt_tokens: 2 ** 31, completion_tokens: 1 },
      { prompt_tokens: 1e12, completion_tokens: 1 },
      { prompt_tokens: 1.5, completion_tokens: 2 },
      { completion_tokens: 2 },
      { prompt_tokens: '7', completion_tokens: 1 },
    ];
    let prompts = 0;
    let completions = 0;
    for (const usage of bad) {
      const user = await newUser(w.t); // each their own budget
      const roomId = await w.room([user], [p]);
      w.fake.enqueue({ chunks: ['abcde', 'f'], usage });
      const end = await w.ask(user, roomId, p.handle);
      const req = w.fake.requests.at(-1)!;
      expect({ usage, end: end.finishReason }).toEqual({ usage, end: 'stop' });
      expect(end.message!.usage).toEqual({
        promptTokens: promptEstimate(req),
        completionTokens: 2, // ceil(6 / 4)
        estimated: true,
      });
      expect(w.created.some((m) => m.id === end.message!.id)).toBe(true);
      prompts += promptEstimate(req);
      completions += 2;
    }
    const { items } = await w.usage(`groupBy=persona&personaId=${p.id}`);
    expect(items).toEqual([
      expect.objectContaining({
        generations: bad.length,
        promptTokens: prompts,
        completionTokens: completions,
      }),
    ]);
    const metric = await w.t.app.get(MetricsService).personaTokens.get();
    const mine = metric.values.filter((v) => v.labels.persona === p.handle);
    expect(mine.every((v) => v.labels.source === 'estimate' && v.value > 0)).toBe(true);
    expect(mine.reduce((sum, v) => sum + v.value, 0)).toBe(prompts + completions);
  });

  it('a reply that could not be saved is told to the room (not lost in silence), and still counted', async () => {
    const user = await newUser(w.t);
    const p = await w.persona();
    const roomId = await w.room([user], [p]);
    // The database refuses this one reply's insert.
    await w.db
      .query(`CREATE OR REPLACE FUNCTION pfix_refuse_reply() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.content = 'unsavable reply' THEN RAISE EXCEPTION 'refused by the test'; END IF;
      RETURN NEW; END $$`);
    await w.db.query(
      `CREATE TRIGGER pfix_refuse_reply BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION pfix_refuse_reply()`,
    );
    try {
      w.fake.enqueue({
        chunks: ['unsavable', ' reply'],
        usage: { prompt_tokens: 9, completion_tokens: 2 },
      });
      const end = await w.ask(user, roomId, p.handle);
      expect(end).toMatchObject({ finishReason: 'stop', message: null });
      const notice = await w.until(() =>
        w.notices(roomId).find((n) => n.includes('could not be saved')),
      );
      expect(notice).toMatch(/^Bot \d+ could not reply: the reply could not be saved\.$/);
      const { items } = await w.usage(`groupBy=persona&personaId=${p.id}`);
      expect(items[0]).toMatchObject({ generations: 1, promptTokens: 9, completionTokens: 2 });
    } finally {
      await w.db.query(`DROP TRIGGER pfix_refuse_reply ON messages`);
      await w.db.query(`DROP FUNCTION pfix_refuse_reply()`);
    }
  });

  it('a follow-up refused by the user budget names the person who started the exchange', async () => {
    const gina = await newUser(w.t);
    const [a, b] = [await w.persona(), await w.persona()];
    const roomId = await w.room([gina], [a, b]);
    await w.t
      .http()
      .put(api(`/rooms/${roomId}/persona-policy`))
      .set(w.admin.auth)
      .send({ crossTalk: true })
      .expect(200);
    // a's reply calls b; gina's 40 tokens are gone with it.
    w.fake.enqueue({
      chunks: [`over to @${b.handle}`],
      usage: { prompt_tokens: 35, completion_tokens: 5 },
    });
    await w.ask(gina, roomId, a.handle);
    const notice = await w.until(() =>
      w.notices(roomId).find((n) => n.includes('BUDGET_EXHAUSTED')),
    );
    expect(notice).toContain(
      `will not reply: @${gina.username} has used up today's user token budget`,
    );
  });

  it('by room, private conversations are one row without ids or names; a conversation id filters like an unknown room', async () => {
    const hana = await newUser(w.t);
    const p = await w.persona();
    const roomId = await w.room([hana], [p]);
    w.fake.enqueue({ chunks: ['in the room'], usage: { prompt_tokens: 3, completion_tokens: 1 } });
    await w.ask(hana, roomId, p.handle);
    const convs: string[] = [];
    for (let i = 0; i < 2; i++) {
      const conv = await w.t
        .http()
        .post(api('/conversations'))
        .set(hana.auth)
        .send({ personaId: p.id })
        .expect(201);
      convs.push(conv.body.id as string);
      w.fake.enqueue({ chunks: ['private'], usage: { prompt_tokens: 4, completion_tokens: 2 } });
      await send(w.t, hana, conv.body.id as string, 'just between us');
      await w.until(() => w.endsIn(conv.body.id as string)[0]);
    }
    const { items } = await w.usage(`groupBy=room&userId=${hana.id}`);
    expect(items).toEqual([
      {
        key: roomId,
        name: expect.any(String),
        generations: 1,
        promptTokens: 3,
        completionTokens: 1,
        totalTokens: 4,
      },
      {
        key: 'private',
        name: 'private conversations',
        generations: 2,
        promptTokens: 8,
        completionTokens: 4,
        totalTokens: 12,
      },
    ]);
    for (const group of ['room', 'user', 'day'])
      expect((await w.usage(`groupBy=${group}&roomId=${convs[0]}`)).items).toEqual([]);
    expect((await w.usage(`groupBy=room&roomId=${roomId}`)).items).toHaveLength(1);
  });

  it("a room's moderator may not shorten the personas' cooldown below the server default; admins may", async () => {
    const owner = await newUser(w.t); // a moderator: as far as the guards go, the same
    const room = { id: await w.room([owner], []) };
    await w.t
      .http()
      .put(api(`/rooms/${room.id}/members/${owner.id}/role`))
      .set(w.admin.auth)
      .send({ role: 'moderator' })
      .expect(200);
    const put = (as: TestUser, body: object, status: number) =>
      w.t
        .http()
        .put(api(`/rooms/${room.id}/persona-policy`))
        .set(as.auth)
        .send(body)
        .expect(status);
    const refused = await put(owner, { cooldownMs: 1000 }, 403); // default: 5 s
    expect(refused.body.message).toBe(
      'Only admins may loosen the loop guards beyond the server defaults: cooldownMs below 5000',
    );
    expect((await put(owner, { cooldownMs: 6000 }, 200)).body.effective.cooldownMs).toBe(6000);
    expect((await put(w.admin, { cooldownMs: 0 }, 200)).body.effective.cooldownMs).toBe(0);
  });

  it('GET /admin/usage is for admins only and validates its filters', async () => {
    const mallory = await newUser(w.t);
    const refused = await w.usage('groupBy=user', mallory, 403);
    expect(refused).toMatchObject({ code: 'FORBIDDEN' });
    await w.t.http().get(api('/admin/usage')).expect(401);
    for (const bad of [
      'groupBy=model',
      'from=2026-02-30',
      'from=2026-1-1',
      'to=yesterday',
      'userId=nope',
      'limit=0',
      'after=x%27--',
      'from=2026-02-02&to=2026-02-01',
    ]) {
      const res = await w.usage(bad, w.admin, 400);
      expect({ bad, code: (res as unknown as { code: string }).code }).toEqual({
        bad,
        code: 'VALIDATION_FAILED',
      });
    }
  });
});

describe('room and global budgets (e2e)', () => {
  const w = new World();
  beforeAll(() => w.start({ PERSONA_DAILY_TOKENS_ROOM: '30', PERSONA_DAILY_TOKENS_GLOBAL: '70' }));
  afterAll(() => w.stop());

  it('the room budget is shared by its members; the global one by every room', async () => {
    const [a, b] = [await newUser(w.t), await newUser(w.t)];
    const p = await w.persona();
    const r1 = await w.room([a, b], [p]);
    w.fake.respond = () => ({ chunks: ['ok'], usage: { prompt_tokens: 15, completion_tokens: 5 } });
    await w.ask(a, r1, p.handle); // r1: 20
    await w.ask(b, r1, p.handle); // r1: 40 ≥ 30
    await send(w.t, a, r1, `@${p.handle} more?`);
    const notice = await w.until(() => w.notices(r1).find((n) => n.includes('BUDGET_EXHAUSTED')));
    expect(notice).toMatch(/this room has used up today's room token budget \(30 tokens\)/);
    expect(notice).toMatch(/\[BUDGET_EXHAUSTED:room\]$/);

    // 40 so far; another room: 60, then 80 ≥ 70: every room is refused.
    const r2 = await w.room([a], [p]);
    await w.ask(a, r2, p.handle);
    const r3 = await w.room([b], [p]);
    await w.ask(b, r3, p.handle);
    const r4 = await w.room([b], [p]);
    const requests = w.fake.requests.length;
    await send(w.t, b, r4, `@${p.handle} anyone?`);
    const global = await w.until(() => w.notices(r4).find((n) => n.includes('BUDGET_EXHAUSTED')));
    expect(global).toMatch(
      /will not reply: this server has used up today's global token budget \(70 tokens\)\. It resets at 00:00 UTC/,
    );
    expect(global).toMatch(/\[BUDGET_EXHAUSTED:global\]$/);
    expect(w.fake.requests.length).toBe(requests);
    const total = (await w.usage('groupBy=day')).items;
    expect(total).toEqual([
      { key: today(), generations: 4, promptTokens: 60, completionTokens: 20, totalTokens: 80 },
    ]);
  });
});

describe('requests other than replies (e2e)', () => {
  const w = new World();
  beforeAll(() => w.start({ PERSONA_DAILY_TOKENS_USER: '60' }));
  afterAll(() => w.stop());

  it("the director's tokens count for the person and the room (persona DIRECTOR_ID), and a used-up budget stops it before it is asked", async () => {
    const ivy = await newUser(w.t);
    const p = await w.persona();
    const roomId = await w.room([ivy], [p]);
    await w.t
      .http()
      .put(api(`/rooms/${roomId}/persona-policy`))
      .set(w.admin.auth)
      .send({ policy: 'director' })
      .expect(200);
    w.fake.enqueue(
      { chunks: [p.handle], usage: { prompt_tokens: 30, completion_tokens: 3 } },
      { chunks: ['hi'], usage: { prompt_tokens: 20, completion_tokens: 1 } },
    );
    await send(w.t, ivy, roomId, 'who wants to answer?');
    await w.until(() => w.endsIn(roomId)[0]);
    expect(w.fake.requests.at(-2)!.stream).not.toBe(true); // the director's request
    const director = await w.usage(`groupBy=persona&personaId=${DIRECTOR_ID}&userId=${ivy.id}`);
    expect(director.items).toEqual([
      {
        key: DIRECTOR_ID,
        name: null,
        generations: 0,
        promptTokens: 30,
        completionTokens: 3,
        totalTokens: 33,
      },
    ]);
    expect((await w.usage(`groupBy=room&roomId=${roomId}`)).items[0]).toMatchObject({
      generations: 1,
      promptTokens: 50,
      completionTokens: 4,
    });
    const metric = await w.t.app.get(MetricsService).personaTokens.get();
    expect(
      metric.values.find((v) => v.labels.outcome === 'director' && v.labels.kind === 'prompt')
        ?.value,
    ).toBe(30);

    // 54 ≥ 60? not yet: one more director request (30 + 3) → 87; then refused before asking.
    w.fake.enqueue({ chunks: ['none'], usage: { prompt_tokens: 30, completion_tokens: 3 } });
    await send(w.t, ivy, roomId, 'anyone else?');
    await w.until(() => w.fake.requests.length === 3 && w.fake.requests[2]);
    await sleep(200);
    const requests = w.fake.requests.length;
    await send(w.t, ivy, roomId, 'still there?');
    const notice = await w.until(() =>
      w.notices(roomId).find((n) => n.includes('BUDGET_EXHAUSTED')),
    );
    expect(notice).toMatch(
      new RegExp(
        `^Personas will not reply: @${ivy.username} has used up today's user token budget \\(60 tokens\\)`,
      ),
    );
    await sleep(200);
    expect(w.fake.requests.length).toBe(requests);
  });
});

describe('replies starting at once (e2e)', () => {
  const w = new World();
  beforeAll(() => w.start({ PERSONA_DAILY_TOKENS_USER: '1' }));
  afterAll(() => w.stop());

  it('see each other: the check and the prompt reservation are one step, so one of three starts', async () => {
    const frank = await newUser(w.t);
    const ps = [await w.persona(), await w.persona(), await w.persona()];
    const roomId = await w.room([frank], ps);
    w.fake.respond = () => ({ chunks: ['slow', ' answer'], delayMs: 100 });
    // One message calls three personas: three queues, three generations starting together.
    await send(w.t, frank, roomId, ps.map((p) => `@${p.handle}`).join(' ') + ' all of you?');
    await w.until(() => w.endsIn(roomId)[0]);
    const notice = await w.until(() =>
      w.notices(roomId).find((n) => n.includes('BUDGET_EXHAUSTED:user')),
    );
    expect(notice).toBeTruthy();
    await sleep(300); // nothing else is coming: the other two were refused before any request
    expect(w.fake.requests).toHaveLength(1);
    expect(w.endsIn(roomId)).toHaveLength(1);
    expect(w.notices(roomId).filter((n) => n.includes('BUDGET_EXHAUSTED'))).toHaveLength(1);
    const [sum] = (await w.usage(`groupBy=user&userId=${frank.id}`)).items;
    expect(sum.generations).toBe(1);
  });
});

describe('replies in flight count at their most (e2e)', () => {
  const w = new World();
  beforeAll(() => w.start({ PERSONA_DAILY_TOKENS_USER: '1000' }));
  afterAll(() => w.stop());

  // Before: only the prompts were reserved (a few tokens each), so all three started with 1000
  // tokens of budget and could write 3 × 1500 between them.
  it('a reply reserves its maxTokens: three called at once with room for one start one; the sum settles to the real tokens', async () => {
    const gina = await newUser(w.t);
    const ps = [
      await w.persona({ maxTokens: 1500 }),
      await w.persona({ maxTokens: 1500 }),
      await w.persona({ maxTokens: 1500 }),
    ];
    const roomId = await w.room([gina], ps);
    w.fake.respond = () => ({
      chunks: ['slow', ' answer'],
      delayMs: 100,
      usage: { prompt_tokens: 30, completion_tokens: 2 },
    });
    await send(w.t, gina, roomId, ps.map((p) => `@${p.handle}`).join(' ') + ' all of you?');
    const notice = await w.until(() =>
      w.notices(roomId).find((n) => n.includes('BUDGET_EXHAUSTED:user')),
    );
    expect(notice).toBeTruthy();
    // While the one reply is in flight, the report counts its reservation.
    const during = (await w.usage(`groupBy=user&userId=${gina.id}`)).items[0];
    expect(during.generations).toBe(1);
    expect(during.completionTokens).toBe(1500);
    await w.until(() => w.endsIn(roomId)[0]);
    await sleep(300); // nothing else is coming: the other two were refused before any request
    expect(w.fake.requests).toHaveLength(1);
    expect(w.endsIn(roomId)).toHaveLength(1);
    // Settled: the model's own figures, the unused reservation given back.
    const after = (await w.usage(`groupBy=user&userId=${gina.id}`)).items[0];
    expect(after).toMatchObject({ generations: 1, promptTokens: 30, completionTokens: 2 });
    // Room again: the next reply starts.
    w.fake.respond = () => ({ chunks: ['again'] });
    const end = await w.ask(gina, roomId, ps[1].handle);
    expect(end.finishReason).toBe('stop');
  });
});
