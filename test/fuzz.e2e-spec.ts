import { getMetadataStorage } from 'class-validator';
import fc from 'fast-check';
import { randomUUID } from 'node:crypto';
import { COMMAND_NAMES, type CommandName } from '../src/chat/contract';
import * as Payloads from '../src/chat/dto';
import { startApp, type TestApp } from './support/app';
import {
  ADMIN_ENV,
  join,
  loginAdmin,
  newRoom,
  newUser,
  send,
  type TestUser,
} from './support/factories';
import { call, type ClientSocket, connect } from './support/socket';

/**
 * Generated bad input (fast-check). REST: every operation of the OpenAPI document (itself derived
 * from the DTO classes), with path, query and body values drawn from each field's schema and
 * mixed with hostile values. Socket: every command of the contract, with payloads drawn from the
 * class-validator metadata of its DTO. The promise: no 5xx, no missing ack, no unhandled
 * rejection, and the server keeps serving. FUZZ_RUNS scales it (default ≥ 10,000 cases).
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 10_500);
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
const REST_SHARE = 0.4;
const CONCURRENCY = 16;

/** Values no field should choke on. */
const hostile = fc.constantFrom<unknown>(
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\ud800',
  '\uFFFF',
  '👨‍👩‍👧‍👦',
  '<script>alert(1)</script>',
  "' OR 1=1 --",
  '%00',
  '../../etc/passwd',
  'x'.repeat(5000),
  { $ne: null },
  { $gt: '' },
  [],
  [[['x']]],
  {},
  null,
  true,
  -1,
  0,
  1.5,
  1e308,
  -1e308,
  Number.MAX_SAFE_INTEGER + 2,
  '9223372036854775808',
  'NaN',
  '__proto__',
  { __proto__: { admin: true } },
);

interface Schema {
  type?: string;
  format?: string;
  enum?: unknown[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  nullable?: boolean;
  $ref?: string;
  items?: Schema;
  properties?: Record<string, Schema>;
  required?: string[];
  allOf?: Schema[];
}

interface Pools {
  uuids: string[];
  messageIds: number[];
}

/** A value that fits the schema (most of the time it passes validation). */
function fitting(schema: Schema, pools: Pools): fc.Arbitrary<unknown> {
  if (schema.enum) return fc.constantFrom(...schema.enum);
  switch (schema.type) {
    case 'integer':
    case 'number':
      return fc.oneof(
        fc.constantFrom(...pools.messageIds),
        fc.integer({ min: schema.minimum ?? -10, max: Math.min(schema.maximum ?? 1e6, 1e9) }),
      );
    case 'boolean':
      return fc.boolean();
    case 'array':
      return fc.array(fitting(schema.items ?? {}, pools), { maxLength: 3 });
    default:
      if (schema.format === 'uuid') return fc.oneof(fc.constantFrom(...pools.uuids), fc.uuid());
      if (schema.pattern) {
        try {
          return fc.stringMatching(new RegExp(schema.pattern, 'u'));
        } catch {
          // not a JS pattern: fall through
        }
      }
      return fc.string({
        unit: 'grapheme',
        minLength: schema.minLength ?? 0,
        maxLength: Math.min(schema.maxLength ?? 40, 300),
      });
  }
}

/** Fitting, hostile, or anything JSON can hold. */
const valueFor = (schema: Schema, pools: Pools) =>
  fc.oneof(
    { weight: 5, arbitrary: fitting(schema, pools) },
    { weight: 3, arbitrary: hostile },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  );

function objectFor(schema: Schema | undefined, pools: Pools): fc.Arbitrary<unknown> {
  const props = schema?.properties ?? {};
  const fields = Object.fromEntries(
    Object.entries(props).map(([k, s]) => [
      k,
      fc.option(valueFor(s, pools), { nil: undefined, freq: 4 }),
    ]),
  );
  const shaped = fc
    .tuple(
      fc.record(fields),
      fc.option(
        fc.dictionary(fc.constantFrom('role', 'isAdmin', 'authorId', 'id', 'x', '$where'), hostile),
        { freq: 4 },
      ),
    )
    .map(([o, extra]) => {
      const clean = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
      return extra ? { ...clean, ...extra } : clean;
    });
  return fc.oneof({ weight: 9, arbitrary: shaped }, { weight: 1, arbitrary: hostile });
}

interface Operation {
  method: string;
  path: string;
  params: { name: string; in: string; schema: Schema }[];
  body?: Schema;
}

function resolve(
  doc: { components: { schemas: Record<string, Schema> } },
  s?: Schema,
): Schema | undefined {
  if (!s) return undefined;
  if (s.$ref) return resolve(doc, doc.components.schemas[s.$ref.split('/').pop()!]);
  if (s.allOf) return Object.assign({}, ...s.allOf.map((x) => resolve(doc, x))) as Schema;
  return s;
}

/** Socket payload schema from class-validator metadata (the DTO classes the gateway validates with). */
function schemaOfClass(cls: new () => object): Schema {
  const metas = getMetadataStorage().getTargetValidationMetadatas(cls, '', true, false);
  const properties: Record<string, Schema> = {};
  for (const m of metas) {
    const p = (properties[m.propertyName] ??= { type: 'string' });
    const name = m.name ?? '';
    if (name === 'isUuid') p.format = 'uuid';
    if (name === 'isInt') p.type = 'integer';
    if (name === 'min') p.minimum = m.constraints[0] as number;
    if (name === 'max') p.maximum = m.constraints[0] as number;
    if (name === 'maxLength') p.maxLength = m.constraints[0] as number;
    if (name === 'minLength') p.minLength = m.constraints[0] as number;
    if (name === 'matches') p.pattern = (m.constraints[0] as RegExp).source;
  }
  return { type: 'object', properties };
}

const COMMAND_PAYLOADS = {
  'room.join': Payloads.RoomJoinPayload,
  'room.leave': Payloads.RoomPayload,
  'message.send': Payloads.MessageSendPayload,
  'message.edit': Payloads.MessageEditPayload,
  'message.delete': Payloads.MessageDeletePayload,
  'message.report': Payloads.MessageReportPayload,
  'reaction.add': Payloads.ReactionPayload,
  'reaction.remove': Payloads.ReactionPayload,
  'typing.start': Payloads.RoomPayload,
  'typing.stop': Payloads.RoomPayload,
  'read.mark': Payloads.ReadMarkPayload,
  'notification.read': Payloads.NotificationReadPayload,
  'history.fetch': Payloads.HistoryFetchPayload,
  'thread.fetch': Payloads.ThreadFetchPayload,
  'persona.cancel': Payloads.PersonaCancelPayload,
  'auth.refresh': Payloads.AuthRefreshPayload,
} satisfies Record<CommandName, new () => object>;

/** Routes that would end the fuzzer's own session are left out (sessions have their own suite). */
const SKIP = new Set(['POST /api/v1/auth/logout', 'POST /api/v1/auth/password']);

async function inBatches<T>(items: T[], size: number, fn: (x: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

describe('generated bad input (fast-check)', () => {
  let t: TestApp;
  let admin: TestUser;
  let user: TestUser;
  let pools: Pools;
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason);

  beforeAll(async () => {
    process.on('unhandledRejection', onRejection);
    t = await startApp({
      ...ADMIN_ENV,
      RATE_LIMIT_SEND: '1000000',
      RATE_LIMIT_EDIT: '1000000',
      RATE_LIMIT_REACT: '1000000',
      RATE_LIMIT_ROOMS: '1000000',
      RATE_LIMIT_TYPING: '1000000',
      RATE_LIMIT_READ: '1000000',
      USER_MAX_INFLIGHT: '1000000',
      WS_MAX_SOCKETS_PER_USER: '50',
      // Push on, so its routes validate what they are given (off, they answer 503 to anything);
      // an allow-list, so no generated URL sends a DNS lookup out.
      PUSH_HMAC_SECRET: 'fuzz-push-secret-fuzz-push-secret-0123',
      PUSH_ALLOWED_HOSTS: 'push.example.test',
      RATE_LIMIT_PUSH: '1000000',
      RATE_LIMIT_UPLOAD: '1000000',
      // A 5xx is logged with its cause (only INTERNAL and UNAVAILABLE log at this level).
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'error',
    });
    admin = await loginAdmin(t);
    user = await newUser(t);
    const victim = await newUser(t);
    const room = await newRoom(t, admin);
    await join(t, user, room.id);
    const priv = await newRoom(t, admin, { visibility: 'private' });
    const m = await send(t, user, room.id, 'fuzz target');
    const persona = await t
      .http()
      .post('/api/v1/personas')
      .set(admin.auth)
      .send({ handle: 'fuzzbot', displayName: 'Fuzz' })
      .expect(201);
    const upload = await t
      .http()
      .post(`/api/v1/rooms/${room.id}/attachments`)
      .set(user.auth)
      .attach('file', Buffer.from('fuzz attachment'), 'fuzz.txt')
      .expect(201);
    pools = {
      uuids: [
        room.id,
        priv.id,
        victim.id,
        persona.body.id as string,
        upload.body.id as string,
        randomUUID(),
      ],
      messageIds: [m.id, 0, 1],
    };
    console.log(`fuzz seed ${SEED} (FUZZ_SEED=${SEED} reproduces), ${RUNS} cases`);
  });
  afterAll(async () => {
    process.off('unhandledRejection', onRejection);
    await t.close();
  });

  it(`REST: every operation, ${Math.round(RUNS * REST_SHARE)} generated requests, no 5xx`, async () => {
    const doc = (await t.http().get('/docs-json').expect(200)).body as {
      paths: Record<
        string,
        Record<
          string,
          {
            parameters?: Operation['params'];
            requestBody?: { content: Record<string, { schema: Schema }> };
          }
        >
      >;
      components: { schemas: Record<string, Schema> };
    };
    const ops: Operation[] = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.entries(methods)
        .map(([method, op]) => ({
          method: method.toUpperCase(),
          path,
          params: (op.parameters ?? []).map((p) => ({
            ...p,
            schema: resolve(doc, p.schema) ?? {},
          })),
          body: resolve(doc, op.requestBody?.content['application/json']?.schema),
        }))
        .filter((o) => !SKIP.has(`${o.method} ${o.path}`)),
    );
    expect(ops.length).toBeGreaterThan(40);
    const requestArb = fc.constantFrom(...ops).chain((op) =>
      fc.record({
        op: fc.constant(op),
        path: fc.tuple(
          ...op.params
            .filter((p) => p.in === 'path')
            .map((p) =>
              fc.oneof(
                { weight: 4, arbitrary: fitting(p.schema, pools) },
                { weight: 1, arbitrary: fc.string({ maxLength: 60 }) },
              ),
            ),
        ),
        query: fc.tuple(
          ...op.params
            .filter((p) => p.in === 'query')
            .map((p) => fc.option(valueFor(p.schema, pools), { freq: 2, nil: undefined })),
        ),
        body: op.body ? objectFor(op.body, pools) : fc.constant(undefined),
        asAdmin: fc.boolean(),
      }),
    );
    const cases = fc.sample(requestArb, { numRuns: Math.round(RUNS * REST_SHARE), seed: SEED });
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    const slow = new Map<string, number>();
    await inBatches(cases, CONCURRENCY, async ({ op, path, query, body, asAdmin }) => {
      let url = op.path;
      op.params
        .filter((p) => p.in === 'path')
        .forEach((p, i) => (url = url.replace(`{${p.name}}`, encodeURIComponent(String(path[i])))));
      const qs = new URLSearchParams();
      op.params
        .filter((p) => p.in === 'query')
        .forEach((p, i) => {
          const v = query[i];
          if (v !== undefined) qs.append(p.name, typeof v === 'string' ? v : JSON.stringify(v));
        });
      const started = Date.now();
      const res = await fetch(`${t.url}${url}${qs.size ? `?${qs.toString()}` : ''}`, {
        method: op.method,
        headers: {
          authorization: `Bearer ${(asAdmin ? admin : user).accessToken}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      const text = await res.text();
      const key = `${op.method} ${op.path}`;
      slow.set(key, (slow.get(key) ?? 0) + Date.now() - started);
      if (res.status >= 500)
        failures.push(
          `${op.method} ${url}?${qs.toString()} ${JSON.stringify(body)?.slice(0, 300)} → ${res.status} ${text.slice(0, 200)}`,
        );
    });
    console.log(
      `REST fuzz: ${cases.length} requests over ${ops.length} operations; statuses ${[...statuses]
        .sort()
        .map(([s, n]) => `${s}×${n}`)
        .join(' ')}`,
    );
    if (process.env.FUZZ_PROFILE) console.log([...slow].sort((a, b) => b[1] - a[1]).slice(0, 8));
    expect(failures.slice(0, 20)).toEqual([]);
  }, 240_000);

  it(`socket: every command, ${Math.round(RUNS * (1 - REST_SHARE))} generated payloads, every one acked without INTERNAL`, async () => {
    const sockets: ClientSocket[] = [];
    for (let i = 0; i < 4; i++) sockets.push(await connect(t, (i % 2 ? admin : user).accessToken));
    const commandArb = fc.constantFrom(...COMMAND_NAMES).chain((name) =>
      fc.record({
        name: fc.constant(name),
        payload: objectFor(schemaOfClass(COMMAND_PAYLOADS[name]), pools),
        socket: fc.nat({ max: sockets.length - 1 }),
      }),
    );
    const cases = fc.sample(commandArb, {
      numRuns: Math.round(RUNS * (1 - REST_SHARE)),
      seed: SEED + 1,
    });
    const failures: string[] = [];
    const codes = new Map<string, number>();
    await inBatches(cases, CONCURRENCY, async ({ name, payload, socket }) => {
      const s = sockets[socket];
      if (!s.connected) {
        // Oversized or otherwise rejected packets may close a socket: that socket only.
        sockets[socket] = await connect(t, (socket % 2 ? admin : user).accessToken);
      }
      const used = sockets[socket];
      const ack = await call(used, name, payload as never).catch((e: Error) => ({
        ok: false as const,
        error: { code: e.message, message: '' },
      }));
      const code = ack.ok ? 'ok' : ack.error.code;
      codes.set(code, (codes.get(code) ?? 0) + 1);
      // No ack is a failure unless the socket was closed meanwhile (by another payload sent on
      // it concurrently, as above): a closed socket's pending commands are never acked.
      if (code === 'INTERNAL' || (code.startsWith('no ack') && used.connected))
        failures.push(`${name} ${JSON.stringify(payload)?.slice(0, 300)} → ${code}`);
    });
    for (const s of sockets) s.close();
    console.log(
      `socket fuzz: ${cases.length} commands over ${COMMAND_NAMES.length} commands; results ${[
        ...codes,
      ]
        .sort()
        .map(([c, n]) => `${c}×${n}`)
        .join(' ')}`,
    );
    expect(failures.slice(0, 20)).toEqual([]);
  }, 240_000);

  it('afterwards: no unhandled rejection, and the server still serves', async () => {
    await t.http().get('/health/ready').expect(200);
    // A fresh user and room: the fuzzer (acting as admin too) may have deleted the others.
    const fresh = await newUser(t);
    const room = await newRoom(t, admin);
    await join(t, fresh, room.id);
    const s = await connect(t, fresh.accessToken);
    const ack = await call(s, 'message.send', {
      roomId: room.id,
      clientMsgId: randomUUID(),
      content: 'still here',
    });
    s.close();
    expect(ack.ok ? 'ok' : ack.error).toBe('ok');
    expect(rejections).toEqual([]);
    console.log(`generated cases in total: ${RUNS} (seed ${SEED})`);
  });
});
