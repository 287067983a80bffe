import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { startApp, TestApp } from './support/app';
import { ADMIN_ENV, join, loginAdmin, newRoom, newUser, TestUser } from './support/factories';
import { FakeLlm } from './support/fake-llm';
import { connect, next, ok } from './support/socket';

const TOKEN = 'metrics-token-0123456789';

/**
 * The value of a sample in Prometheus text format: the first sample of that name whose labels
 * include `labels` (undefined when there is none).
 */
function sample(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map(
      [...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(m[3]);
  }
  return undefined;
}

/** Every `expr` in a Grafana dashboard, panels inside rows included. */
function dashboardExprs(dashboard: unknown): string[] {
  const out: string[] = [];
  const visit = (node: unknown) => {
    if (Array.isArray(node)) node.forEach(visit);
    else if (node && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) {
        if (key === 'expr' && typeof value === 'string') out.push(value);
        else visit(value);
      }
    }
  };
  visit(dashboard);
  return out;
}

const PROMQL_WORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'offset',
  'and',
  'or',
  'unless',
]);

/**
 * The metric names a PromQL expression reads: identifiers left once label matchers `{…}`,
 * ranges `[…]`, strings, grouping clauses `by (…)` and function names `f(` are taken out.
 */
function promqlMetrics(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = [...bare.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)]
    .filter((m) => !m[2] && !PROMQL_WORDS.has(m[1]))
    .map((m) => m[1]);
  return [...new Set(names)];
}

/** Series names a scrape declares or samples: `x`, and `x_bucket`/`x_sum`/`x_count` of histograms. */
function exposedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const declared = /^# TYPE (\S+) (\w+)/.exec(line);
    if (declared) {
      names.add(declared[1]);
      if (declared[2] === 'histogram' || declared[2] === 'summary') {
        for (const suffix of ['_bucket', '_sum', '_count']) names.add(declared[1] + suffix);
      }
      continue;
    }
    const sampled = /^([a-zA-Z_:][\w:]*)/.exec(line);
    if (sampled) names.add(sampled[1]);
  }
  return names;
}

describe('metrics (e2e)', () => {
  let t: TestApp;
  let fake: FakeLlm;
  let admin: TestUser;
  const scrape = async () =>
    (await t.http().get('/metrics').set('Authorization', `Bearer ${TOKEN}`).expect(200)).text;

  beforeAll(async () => {
    fake = await FakeLlm.start();
    t = await startApp({
      ...ADMIN_ENV,
      METRICS_TOKEN: TOKEN,
      LLM_BASE_URL: fake.url,
      LLM_MODEL: 'default-model',
      PERSONA_STREAM_FLUSH_MS: '20',
    });
    admin = await loginAdmin(t);
  });
  afterAll(async () => {
    await t.close();
    await fake.close();
  });

  it('exposes the listed series behind the bearer token, with the values of what happened', async () => {
    await t.http().get('/metrics').expect(401);
    const u = await newUser(t);
    const room = await newRoom(t, admin);
    await join(t, u, room.id);
    const s = await connect(t, u.accessToken);
    await ok(s, 'message.send', { roomId: room.id, clientMsgId: randomUUID(), content: 'counted' });
    const text = await scrape();
    const value = (name: string, labels?: Record<string, string>) => sample(text, name, labels);

    expect(value('parlor_sockets_connected')).toBe(1);
    // u's join notice (system) and u's message.
    expect(value('parlor_messages_persisted_total', { role: 'system' })).toBe(1);
    expect(value('parlor_messages_persisted_total', { role: 'user' })).toBe(1);
    expect(value('parlor_ws_emits_total', { event: 'message.created' })).toBe(2);
    // A public room: one broadcast to everyone else, one to its members (the admin).
    expect(value('parlor_ws_emits_total', { event: 'room.created' })).toBe(2);
    expect(value('parlor_ws_acks_total', { command: 'message.send', result: 'ok' })).toBe(1);
    expect(value('parlor_send_ack_seconds_count')).toBe(1);
    expect(value('parlor_send_ack_seconds_bucket', { le: '+Inf' })).toBe(1);
    expect(value('parlor_send_ack_seconds_sum')).toBeGreaterThan(0);
    // The one send was one batch of one row (group commit: nothing else in flight).
    expect(value('parlor_send_batch_rows_count')).toBe(1);
    expect(value('parlor_send_batch_rows_sum')).toBe(1);
    const join200 = { method: 'POST', route: '/api/v1/rooms/:id/join', status: '200' };
    expect(value('parlor_http_request_duration_seconds_count', join200)).toBe(1);
    expect(value('parlor_http_request_duration_seconds_bucket', { ...join200, le: '+Inf' })).toBe(
      1,
    );
    // prom-client's default metrics under their standard names (stock Node.js dashboards).
    expect(value('nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
    expect(value('process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(value('nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    expect(text).not.toMatch(/^parlor_(process|nodejs)_/m);
    // Parlor's own series, and only they, carry the prefix.
    const own = [...exposedNames(text)].filter((n) => !/^(process|nodejs)_/.test(n));
    expect(own.filter((n) => !n.startsWith('parlor_'))).toEqual([]);
    expect(value('parlor_db_pool_connections', { state: 'total' })).toBeGreaterThanOrEqual(1);
    // Declared with no sample yet: no persona has replied.
    expect(text).toContain('# TYPE parlor_persona_generations_total counter');
    expect(value('parlor_persona_generations_total')).toBeUndefined();
    expect(text).toContain('# TYPE parlor_persona_generation_seconds histogram');
    expect(text).toContain('# TYPE parlor_persona_first_token_seconds histogram');
    expect(text).toContain('# TYPE parlor_persona_tokens_total counter');
    // Labelled by persona and outcome: no series until a reply ends.
    expect(value('parlor_persona_generation_seconds_count')).toBeUndefined();
    s.close();
  });

  it('counts persona replies by how they ended, and times them', async () => {
    const u = await newUser(t);
    const room = await newRoom(t, admin);
    await join(t, u, room.id);
    const persona = (
      await t
        .http()
        .post('/api/v1/personas')
        .set(admin.auth)
        .send({ handle: `m_${randomUUID().slice(0, 8)}`, displayName: 'Metered' })
        .expect(201)
    ).body as { id: string; handle: string };
    await t
      .http()
      .post(`/api/v1/rooms/${room.id}/personas/${persona.id}`)
      .set(admin.auth)
      .expect(200);
    const s = await connect(t, u.accessToken);
    const ask = (content: string) =>
      ok(s, 'message.send', { roomId: room.id, clientMsgId: randomUUID(), content });
    const ended = () => next(s, 'persona.stream.end', (e) => e.roomId === room.id);
    const before = await scrape();

    // 1. finished by the model
    fake.enqueue({ chunks: ['All ', 'done.'], delayMs: 20 });
    let end = ended();
    await ask(`@${persona.handle} one`);
    expect((await end).finishReason).toBe('stop');

    // 2. cancelled by the asker after some text
    fake.enqueue({ chunks: Array.from({ length: 40 }, (_, i) => `t${i} `), delayMs: 40 });
    end = ended();
    const delta = next(s, 'persona.stream.delta', (d) => d.roomId === room.id);
    await ask(`@${persona.handle} two`);
    await ok(s, 'persona.cancel', { messageId: (await delta).messageId });
    expect((await end).finishReason).toBe('cancelled');

    // 3. the model server fails: no text, a notice
    fake.enqueue({ status: 500 });
    end = ended();
    const notice = next(s, 'message.created', (m) => m.roomId === room.id && m.role === 'system');
    await ask(`@${persona.handle} three`);
    expect((await end).finishReason).toBe('error');
    expect((await notice).content).toContain('could not reply');

    const text = await scrape();
    const value = (name: string, labels?: Record<string, string>) => sample(text, name, labels);
    const delta0 = (name: string, labels?: Record<string, string>) =>
      (value(name, labels) ?? 0) - (sample(before, name, labels) ?? 0);
    const p = persona.handle;
    for (const outcome of ['stop', 'cancelled', 'error']) {
      expect(value('parlor_persona_generations_total', { persona: p, outcome })).toBe(1);
      expect(value('parlor_persona_generation_seconds_count', { persona: p, outcome })).toBe(1);
    }
    expect(
      value('parlor_persona_generations_total', { persona: p, outcome: 'timeout' }),
    ).toBeUndefined();
    // The cancelled reply streamed 40 ms per chunk before it was stopped.
    expect(
      value('parlor_persona_generation_seconds_sum', { persona: p, outcome: 'cancelled' }),
    ).toBeGreaterThan(0.04);
    // Time to first token: the two replies that produced text (20 and 40 ms before the first).
    for (const outcome of ['stop', 'cancelled']) {
      expect(value('parlor_persona_first_token_seconds_count', { persona: p, outcome })).toBe(1);
      expect(
        value('parlor_persona_first_token_seconds_sum', { persona: p, outcome }),
      ).toBeGreaterThanOrEqual(0.015);
    }
    expect(
      value('parlor_persona_first_token_seconds_count', { persona: p, outcome: 'error' }),
    ).toBeUndefined();
    // Tokens: the fake server's `usage` for the finished reply (prompt 11, one per chunk)…
    const tokens = (outcome: string, kind: string, source: string) =>
      value('parlor_persona_tokens_total', { persona: p, outcome, kind, source });
    expect(tokens('stop', 'prompt', 'usage')).toBe(11);
    expect(tokens('stop', 'completion', 'usage')).toBe(2);
    // …and the documented estimate (1 token per 4 characters) for the one cut short, which
    // never got to the usage chunk.
    expect(tokens('cancelled', 'completion', 'estimate')).toBeGreaterThan(0);
    expect(tokens('cancelled', 'prompt', 'estimate')).toBeGreaterThan(0);
    expect(tokens('cancelled', 'completion', 'usage')).toBeUndefined();
    // No generation recorded without a persona label.
    expect(text).not.toMatch(/^parlor_persona_generations_total\{outcome=/m);
    // Two replies with text saved; three messages of u; one failure notice.
    expect(delta0('parlor_messages_persisted_total', { role: 'assistant' })).toBe(2);
    expect(delta0('parlor_messages_persisted_total', { role: 'user' })).toBe(3);
    expect(delta0('parlor_messages_persisted_total', { role: 'system' })).toBe(1);
    expect(delta0('parlor_ws_emits_total', { event: 'persona.stream.start' })).toBe(3);
    expect(delta0('parlor_ws_emits_total', { event: 'persona.stream.end' })).toBe(3);
    expect(delta0('parlor_ws_acks_total', { command: 'persona.cancel', result: 'ok' })).toBe(1);
    s.close();
  });
});

describe('the Grafana dashboard (deploy/grafana/parlor-dashboard.json)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ METRICS_TOKEN: TOKEN });
  });
  afterAll(() => t.close());

  it('queries only metrics that /metrics exposes', async () => {
    const dashboard = JSON.parse(
      readFileSync('deploy/grafana/parlor-dashboard.json', 'utf8'),
    ) as unknown;
    const exprs = dashboardExprs(dashboard);
    expect(exprs.length).toBeGreaterThanOrEqual(20);
    const queried = [...new Set(exprs.flatMap(promqlMetrics))].sort();
    // The parser found the names: Parlor's own and the standard Node.js ones.
    expect(queried).toEqual(
      expect.arrayContaining([
        'parlor_sockets_connected',
        'parlor_send_ack_seconds_bucket',
        'process_cpu_seconds_total',
        'nodejs_eventloop_lag_p99_seconds',
      ]),
    );
    const text = (
      await t.http().get('/metrics').set('Authorization', `Bearer ${TOKEN}`).expect(200)
    ).text;
    const exposed = exposedNames(text);
    expect(queried.filter((name) => !exposed.has(name))).toEqual([]);
  });

  it('the PromQL reader finds metric names, not functions, labels or keywords', () => {
    expect(
      promqlMetrics(
        'histogram_quantile(0.95, sum by (le, route) (rate(parlor_http_request_duration_seconds_bucket{route!~"/health.*", instance=~"$instance"}[$__rate_interval])))',
      ),
    ).toEqual(['parlor_http_request_duration_seconds_bucket']);
    expect(promqlMetrics('time() - max by (instance) (process_start_time_seconds{a="b"})')).toEqual(
      ['process_start_time_seconds'],
    );
  });
});

describe('metrics disabled (e2e)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ METRICS_ENABLED: 'false' });
  });
  afterAll(() => t.close());

  it('answers 404', async () => {
    await t.http().get('/metrics').expect(404);
  });
});
