import { startApp, TestApp } from './support/app';
import { startS3 } from './support/s3';
import {
  ADMIN_ENV,
  loginAdmin,
  newUser,
  NO_WRITE_LIMITS,
  type TestUser,
} from './support/factories';

/**
 * The OpenAPI document (/docs-json) is exact: every route documents its errors, every response
 * has a description, the validators' limits are in the schemas, and every documented example
 * request body is accepted by a live server.
 */

interface Schema {
  $ref?: string;
  type?: string;
  example?: unknown;
  properties?: Record<string, Schema>;
  [keyword: string]: unknown;
}
interface MediaType {
  schema: Schema;
  example?: unknown;
  examples?: Record<string, { value: unknown }>;
}
interface Operation {
  operationId: string;
  parameters?: { name: string; in: string; description?: string; schema: Schema }[];
  responses: Record<string, { description?: string }>;
  requestBody?: { content: Record<string, MediaType> };
}
interface Doc {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema> };
}

const api = (path: string) => `/api/v1${path}`;

async function fetchDoc(t: TestApp): Promise<Doc> {
  return (await t.http().get('/docs-json').expect(200)).body as Doc;
}

function operations(doc: Doc): [string, Operation][] {
  return Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]) => [`${method.toUpperCase()} ${path}`, op] as const),
  ) as [string, Operation][];
}

/** The example bodies Swagger UI would send: the media type's examples, else the fields'. */
function exampleBodies(doc: Doc, op: Operation): Record<string, unknown>[] {
  const media = op.requestBody?.content['application/json'];
  if (!media) return [];
  if (media.example !== undefined) return [media.example as Record<string, unknown>];
  if (media.examples)
    return Object.values(media.examples).map((e) => e.value as Record<string, unknown>);
  const schema = doc.components.schemas[media.schema.$ref!.split('/').pop()!];
  return [
    Object.fromEntries(
      Object.entries(schema.properties ?? {})
        .filter(([, s]) => s.example !== undefined)
        .map(([k, s]) => [k, s.example]),
    ),
  ];
}

describe('OpenAPI document (e2e)', () => {
  let t: TestApp;
  let doc: Doc;
  beforeAll(async () => {
    t = await startApp({
      ...ADMIN_ENV,
      ...NO_WRITE_LIMITS,
      MESSAGE_MAX_LENGTH: '1234',
      // Push on, and the example gateway's host allowed (no DNS look-up for a listed host).
      PUSH_HMAC_SECRET: 'openapi-push-secret-openapi-push-secret',
      PUSH_ALLOWED_HOSTS: 'push.example.com',
    });
    doc = await fetchDoc(t);
  });
  afterAll(() => t.close());

  it('documents every route with its errors and every request body field with an example', () => {
    const gaps: string[] = [];
    for (const [where, op] of operations(doc)) {
      if (!where.includes(' /health') && !Object.keys(op.responses).some((c) => c >= '400'))
        gaps.push(`${where}: no error response`);
      const ref = op.requestBody?.content['application/json']?.schema.$ref;
      const body = ref ? doc.components.schemas[ref.split('/').pop()!] : undefined;
      for (const [field, schema] of Object.entries(body?.properties ?? {}))
        if (schema.example === undefined && !schema.$ref)
          gaps.push(`${where}: body field ${field} has no example`);
    }
    expect(gaps).toEqual([]);
  });

  it('describes every response of every operation, success and error', () => {
    const gaps: string[] = [];
    for (const [where, op] of operations(doc))
      for (const [status, response] of Object.entries(op.responses))
        if (!response.description?.trim()) gaps.push(`${where} ${status}`);
    expect(gaps).toEqual([]);
    const login = doc.paths['/api/v1/auth/login'].post.responses['401'].description!;
    expect(login).toMatch(/invalid credentials/i);
    expect(login).not.toMatch(/token/i);
  });

  it("carries the validators' limits in the schemas and parameters", () => {
    const props = (name: string) => doc.components.schemas[name].properties!;
    expect(props('SignupDto').username).toMatchObject({
      minLength: 3,
      maxLength: 32,
      pattern: '^[A-Za-z0-9_.-]{3,32}$',
    });
    expect(props('SignupDto').email).toMatchObject({ format: 'email', maxLength: 254 });
    expect(props('SignupDto').password).toMatchObject({ minLength: 8 });
    expect(props('SignupDto').displayName).toMatchObject({ minLength: 1, maxLength: 64 });
    // MESSAGE_MAX_LENGTH, as configured (the DTO's own cap is a higher hard limit).
    // May be empty when attachmentIds are given (the service says so, not a minLength).
    expect(props('SendMessageDto').content).toMatchObject({ maxLength: 1234 });
    expect(props('SendMessageDto').content.minLength).toBeUndefined();
    expect(props('SendMessageDto').attachmentIds).toMatchObject({
      type: 'array',
      items: { format: 'uuid' },
    });
    expect(props('EditMessageDto').content).toMatchObject({ minLength: 1, maxLength: 1234 });
    expect(props('SendMessageDto').clientMsgId.pattern).toBe('^[A-Za-z0-9_.:-]{1,64}$');
    expect(props('SendMessageDto').replyToId).toMatchObject({ type: 'integer', minimum: 0 });
    expect(props('CreateRoomDto').name).toMatchObject({ minLength: 1, maxLength: 80 });
    expect(props('CreateRoomDto').visibility).toMatchObject({
      enum: ['public', 'private'],
      default: 'public',
    });
    expect(doc.components.schemas.CreateRoomDto).not.toHaveProperty('required', [
      'name',
      'visibility',
    ]);
    expect(props('CreatePersonaDto').handle.pattern).toBe('^[a-z0-9_]{2,32}$');
    expect(props('CreatePersonaDto').maxTokens).toMatchObject({
      type: 'integer',
      minimum: 1,
      maximum: 32768,
    });
    expect(props('CreatePersonaDto').avatarUrl).toMatchObject({ format: 'uri', maxLength: 2000 });
    expect(props('AddMemberDto').userId.format).toBe('uuid');
    expect(props('UpdateUserDto').role.enum).toEqual(expect.arrayContaining(['user', 'admin']));
    // Query and path parameters too.
    const param = (path: string, method: string, name: string) =>
      doc.paths[path][method].parameters!.find((p) => p.name === name)!.schema;
    expect(param('/api/v1/rooms/{id}/messages/search', 'get', 'q')).toMatchObject({
      minLength: 1,
      maxLength: 200,
    });
    expect(param('/api/v1/rooms', 'get', 'cursor').pattern).toMatch(/^\^/);
    expect(param('/api/v1/messages/{id}/reactions/{emoji}', 'put', 'id')).toMatchObject({
      type: 'integer',
      minimum: 0,
    });
    expect(param('/api/v1/messages/{id}/reactions/{emoji}', 'put', 'emoji').maxLength).toBe(32);
    expect(param('/api/v1/admin/audit', 'get', 'action')).toMatchObject({
      type: 'array',
      items: { enum: expect.arrayContaining(['user.role', 'member.ban']) as unknown },
    });
    expect(param('/api/v1/admin/audit', 'get', 'from').format).toBe('date-time');
    expect(param('/api/v1/admin/audit', 'get', 'before')).toMatchObject({
      type: 'integer',
      minimum: 1,
    });
    expect(param('/api/v1/admin/audit/export', 'get', 'actorId').format).toBe('uuid');
    expect(param('/api/v1/admin/usage', 'get', 'groupBy').enum).toEqual([
      'user',
      'room',
      'persona',
      'day',
    ]);
    expect(param('/api/v1/admin/usage', 'get', 'from').format).toBe('date');
    expect(props('CreatePersonaDto').dailyTokenBudget).toMatchObject({
      type: 'integer',
      minimum: 0,
      maximum: 2147483647,
    });
  });

  it('every id in a path says where a real one comes from, and offers no example that would 404', () => {
    const gaps: string[] = [];
    for (const [where, op] of operations(doc))
      for (const p of op.parameters ?? [])
        if (p.in === 'path' && p.name !== 'emoji') {
          if (!/ id: `\w+` of /.test(p.description ?? ''))
            gaps.push(`${where} {${p.name}}: no source`);
          if (p.schema.example !== undefined) gaps.push(`${where} {${p.name}}: an example id`);
        }
    expect(gaps).toEqual([]);
    const param = (path: string, method: string, name: string) =>
      doc.paths[path][method].parameters!.find((p) => p.name === name)!;
    expect(param('/api/v1/messages/{id}', 'patch', 'id').description).toMatch(
      /^Message id: .*GET \/api\/v1\/rooms\/\{id\}\/messages/,
    );
    expect(param('/api/v1/rooms/{id}/members/{userId}', 'delete', 'id').description).toMatch(
      /^Room id: .*GET \/api\/v1\/rooms\b/,
    );
    expect(param('/api/v1/rooms/{id}/members/{userId}', 'delete', 'userId').description).toMatch(
      /^User id: .*GET \/api\/v1\/rooms\/\{id\}\/members/,
    );
    expect(
      param('/api/v1/rooms/{id}/personas/{personaId}', 'post', 'personaId').description,
    ).toMatch(/^Persona id: /);
    expect(param('/api/v1/conversations/{id}', 'get', 'id').description).toMatch(
      /^Conversation id: /,
    );
  });

  it('every documented example request body is accepted by the server', async () => {
    const admin = await loginAdmin(t);
    const bob = await newUser(t);
    const carol = await newUser(t);
    /** What the examples cannot know: ids and tokens of objects on this server. */
    const real: Record<string, unknown> = {};
    let alice: TestUser | undefined;

    type Step = (body: Record<string, unknown>) => Promise<{ status: number; body: unknown }>;
    /** A request as `user` (admin unless said; nobody for the public auth routes). */
    const req =
      (
        method: 'post' | 'patch' | 'put',
        path: () => string,
        user: () => TestUser | undefined = () => admin,
      ): Step =>
      (body) => {
        const r = t.http()[method](api(path()));
        const who = user();
        return (who ? r.set(who.auth) : r).send(body);
      };
    const nobody = () => undefined;
    let room: { id: string } | undefined;
    let message: { id: number } | undefined;
    let persona: { id: string } | undefined;
    let conversation: { id: string } | undefined;
    let report: { id: string } | undefined;
    /** A new user the admin adds to the room (reports are filed by members). */
    const newMember = async () => {
      const u = await newUser(t);
      await t
        .http()
        .post(api(`/rooms/${room!.id}/members`))
        .set(admin.auth)
        .send({ userId: u.id })
        .expect(201);
      return u;
    };

    // In order: each step may use what an earlier one created. Keyed by the documented route,
    // so a new route with a body must be added here.
    const steps: [string, Step, (res: { body: unknown }) => void][] = [
      ['POST /api/v1/auth/signup', req('post', () => '/auth/signup', nobody), () => {}],
      [
        'POST /api/v1/auth/login',
        req('post', () => '/auth/login', nobody),
        (res) => {
          const b = res.body as { accessToken: string; refreshToken: string; user: { id: string } };
          real.refreshToken = b.refreshToken;
          alice = {
            id: b.user.id,
            username: 'alice',
            password: '',
            accessToken: b.accessToken,
            refreshToken: b.refreshToken,
            auth: { Authorization: `Bearer ${b.accessToken}` },
          };
        },
      ],
      [
        'POST /api/v1/auth/refresh',
        req('post', () => '/auth/refresh', nobody),
        (res) => {
          const b = res.body as { accessToken: string };
          alice!.auth = { Authorization: `Bearer ${b.accessToken}` };
        },
      ],
      [
        'POST /api/v1/auth/password',
        req(
          'post',
          () => '/auth/password',
          () => alice,
        ),
        () => {},
      ],
      ['PATCH /api/v1/users/{id}', req('patch', () => `/users/${carol.id}`), () => {}],
      [
        'POST /api/v1/rooms',
        req('post', () => '/rooms'),
        (res) => {
          room = res.body as { id: string };
          real.roomId = room.id;
        },
      ],
      ['PATCH /api/v1/rooms/{id}', req('patch', () => `/rooms/${room!.id}`), () => {}],
      [
        'POST /api/v1/rooms/{id}/messages',
        req('post', () => `/rooms/${room!.id}/messages`),
        (res) => {
          message = res.body as { id: number };
          real.messageId = message.id;
          real.replyToId = message.id;
          real.userId = bob.id;
        },
      ],
      ['PATCH /api/v1/messages/{id}', req('patch', () => `/messages/${message!.id}`), () => {}],
      ['PUT /api/v1/rooms/{id}/read', req('put', () => `/rooms/${room!.id}/read`), () => {}],
      [
        'PUT /api/v1/rooms/{id}/notifications',
        req('put', () => `/rooms/${room!.id}/notifications`),
        () => {},
      ],
      ['POST /api/v1/notifications/read', req('post', () => '/notifications/read'), () => {}],
      [
        'POST /api/v1/rooms/{id}/members',
        req('post', () => `/rooms/${room!.id}/members`),
        () => {},
      ],
      [
        'PUT /api/v1/rooms/{id}/members/{userId}/role',
        req('put', () => `/rooms/${room!.id}/members/${bob.id}/role`),
        () => {},
      ],
      ['POST /api/v1/rooms/{id}/mutes', req('post', () => `/rooms/${room!.id}/mutes`), () => {}],
      ['POST /api/v1/rooms/{id}/bans', req('post', () => `/rooms/${room!.id}/bans`), () => {}],
      [
        'POST /api/v1/personas',
        req('post', () => '/personas'),
        (res) => {
          persona = res.body as { id: string };
          real.personaId = persona.id;
        },
      ],
      [
        'POST /api/v1/conversations',
        req(
          'post',
          () => '/conversations',
          () => bob,
        ),
        (res) => {
          conversation = res.body as { id: string };
        },
      ],
      [
        'PATCH /api/v1/conversations/{id}',
        req(
          'patch',
          () => `/conversations/${conversation!.id}`,
          () => bob,
        ),
        () => {},
      ],
      ['PATCH /api/v1/personas/{id}', req('patch', () => `/personas/${persona!.id}`), () => {}],
      [
        'PUT /api/v1/rooms/{id}/slow-mode',
        req('put', () => `/rooms/${room!.id}/slow-mode`),
        () => {},
      ],
      [
        'PUT /api/v1/rooms/{id}/persona-policy',
        req('put', () => `/rooms/${room!.id}/persona-policy`),
        () => {},
      ],
      [
        'POST /api/v1/rooms/{id}/filters',
        req('post', () => `/rooms/${room!.id}/filters`),
        () => {},
      ],
      ['POST /api/v1/admin/filters', req('post', () => '/admin/filters'), () => {}],
      [
        'POST /api/v1/users/{id}/suspension',
        async (body) => {
          const target = await newUser(t);
          return req('post', () => `/users/${target.id}/suspension`)(body);
        },
        () => {},
      ],
      [
        'POST /api/v1/messages/{id}/reports',
        async (body) => {
          // bob was banned by the example above: a member of its own reports.
          const u = await newMember();
          return req(
            'post',
            () => `/messages/${message!.id}/reports`,
            () => u,
          )(body);
        },
        (res) => {
          report = res.body as { id: string };
        },
      ],
      [
        'POST /api/v1/reports/{id}/dismiss',
        req('post', () => `/reports/${report!.id}/dismiss`),
        () => {},
      ],
      [
        'POST /api/v1/reports/{id}/resolve',
        async (body) => {
          // Each example resolves a report of its own.
          const u = await newMember();
          const r = await t
            .http()
            .post(api(`/messages/${message!.id}/reports`))
            .set(u.auth)
            .send({ category: 'other' })
            .expect(201);
          return req('post', () => `/reports/${(r.body as { id: string }).id}/resolve`)(body);
        },
        () => {},
      ],
      [
        'POST /api/v1/push/pushers',
        req(
          'post',
          () => '/push/pushers',
          () => bob,
        ),
        () => {},
      ],
      [
        'PUT /api/v1/push/settings',
        req(
          'put',
          () => '/push/settings',
          () => bob,
        ),
        () => {},
      ],
      // multipart/form-data: no JSON example to send (test/attachments.e2e-spec.ts uploads).
      [
        'POST /api/v1/rooms/{id}/attachments',
        req('post', () => `/rooms/${room!.id}/attachments`),
        () => {},
      ],
      [
        'POST /api/v1/rooms/{id}/attachments/uploads',
        async (body) => {
          // Direct uploads need S3 storage: on a server with a local S3-compatible store.
          const s3 = await startS3();
          const other = await startApp({ ...ADMIN_ENV, ...s3.env });
          try {
            const root = await loginAdmin(other);
            const r = await other
              .http()
              .post(api('/rooms'))
              .set(root.auth)
              .send({ name: 'uploads' })
              .expect(201);
            return await other
              .http()
              .post(api(`/rooms/${(r.body as { id: string }).id}/attachments/uploads`))
              .set(root.auth)
              .send(body);
          } finally {
            await other.close();
            await s3.close();
          }
        },
        () => {},
      ],
    ];
    // The alias of signup: the same example, so on a server where it was not used yet.
    const aliases = ['POST /api/v1/auth/register'];

    const withBody = operations(doc).filter(([, op]) => op.requestBody);
    expect(withBody.map(([where]) => where).sort()).toEqual(
      [...steps.map(([where]) => where), ...aliases].sort(),
    );

    const failures: string[] = [];
    const run = async (
      where: string,
      op: Operation,
      step: Step,
      after: (r: { body: unknown }) => void,
    ) => {
      const documented = Object.keys(op.responses).filter((c) => c.startsWith('2'));
      for (const example of exampleBodies(doc, op)) {
        // Fields that name objects of this server get real ones; nothing else is changed.
        const body = Object.fromEntries(
          Object.entries(example).map(([k, v]) => [k, k in real ? real[k] : v]),
        );
        const res = await step(body);
        if (!documented.includes(String(res.status)))
          failures.push(
            `${where} ${JSON.stringify(body)} → ${res.status} ${JSON.stringify(res.body)}`,
          );
        else after(res);
      }
    };
    const byRoute = new Map(operations(doc));
    for (const [where, step, after] of steps) {
      await run(where, byRoute.get(where)!, step, after);
      expect(failures).toEqual([]); // the later steps need what this one creates
    }

    // The register alias, on a second server (its example username is taken on this one).
    const other = await startApp();
    try {
      const op = byRoute.get('POST /api/v1/auth/register')!;
      const [example] = exampleBodies(doc, op);
      await other.http().post(api('/auth/register')).send(example).expect(201);
    } finally {
      await other.close();
    }
  }, 120_000); // two more servers (the register alias; direct uploads on S3 storage)
});
