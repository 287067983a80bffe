import { randomUUID } from 'node:crypto';
import sharp from 'sharp';
import { COMMAND_NAMES, type CommandName } from '../../src/chat/contract';
import { startApp, type TestApp } from '../support/app';
import { ADMIN_ENV, loginAdmin, newRoom, newUser, send, type TestUser } from '../support/factories';
import { call, type ClientSocket, connect } from '../support/socket';
import { expectErrorOnly } from './support';

/**
 * OWASP API1/API5 (broken object and function level authorization) and API3 (mass assignment).
 * Every route of the OpenAPI document and every socket command is tried by an outsider against a
 * private room, a message in it and someone else's AI conversation, and by a plain user against
 * admin functions. A new route that is not classified here fails the test.
 * (test/messages.e2e-spec.ts › IDOR and test/personas.e2e-spec.ts › conversations cover the
 * message and conversation routes one by one; this suite is the exhaustive sweep.)
 */
const SECRET_ROOM = `secret-room-${randomUUID().slice(0, 8)}`;
const SECRET_TEXT = `secret-text-${randomUUID().slice(0, 8)}`;
const SECRET_CONV = `secret-conv-${randomUUID().slice(0, 8)}`;
const SECRETS = [SECRET_ROOM, SECRET_TEXT, SECRET_CONV];

type Expect = 'admin-only' | 'hidden' | 'allowed' | 'self' | 'skip';

/**
 * Every operation, with what an outsider (a signed-in plain user with no part in the target)
 * must get: admin-only → 403; hidden → 404 (existence not leaked); allowed → 2xx without
 * secrets; self → acts on the caller only; skip → public auth routes (their own suites).
 */
const ROUTES: Record<string, Expect> = {
  'POST /api/v1/auth/signup': 'skip',
  'POST /api/v1/auth/register': 'skip',
  'POST /api/v1/auth/login': 'skip',
  'POST /api/v1/auth/refresh': 'skip',
  'POST /api/v1/auth/logout': 'skip',
  'POST /api/v1/auth/password': 'skip',
  'GET /api/v1/auth/me': 'self',
  'GET /api/v1/users': 'admin-only',
  'GET /api/v1/users/{id}': 'allowed',
  'PATCH /api/v1/users/{id}': 'admin-only',
  'POST /api/v1/users/{id}/suspension': 'admin-only',
  'DELETE /api/v1/users/{id}/suspension': 'admin-only',
  'POST /api/v1/messages/{id}/reports': 'hidden',
  'GET /api/v1/rooms/{id}/reports': 'hidden',
  'GET /api/v1/admin/reports': 'admin-only',
  'POST /api/v1/reports/{id}/resolve': 'hidden',
  'POST /api/v1/reports/{id}/dismiss': 'hidden',
  'GET /api/v1/rooms': 'allowed',
  'POST /api/v1/rooms': 'admin-only',
  'GET /api/v1/rooms/{id}': 'hidden',
  'PATCH /api/v1/rooms/{id}': 'admin-only',
  'DELETE /api/v1/rooms/{id}': 'admin-only',
  'POST /api/v1/rooms/{id}/join': 'hidden',
  'POST /api/v1/rooms/{id}/leave': 'hidden',
  'GET /api/v1/rooms/{id}/members': 'hidden',
  'POST /api/v1/rooms/{id}/members': 'hidden',
  'DELETE /api/v1/rooms/{id}/members/{userId}': 'admin-only',
  'PUT /api/v1/rooms/{id}/read': 'hidden',
  'POST /api/v1/direct/{userId}': 'allowed',
  'GET /api/v1/rooms/{id}/messages': 'hidden',
  'POST /api/v1/rooms/{id}/messages': 'hidden',
  'GET /api/v1/rooms/{id}/messages/changes': 'hidden',
  'GET /api/v1/rooms/{id}/messages/search': 'hidden',
  'PATCH /api/v1/messages/{id}': 'hidden',
  'DELETE /api/v1/messages/{id}': 'hidden',
  'GET /api/v1/messages/{id}/edits': 'hidden',
  'PUT /api/v1/messages/{id}/reactions/{emoji}': 'hidden',
  'DELETE /api/v1/messages/{id}/reactions/{emoji}': 'hidden',
  'GET /api/v1/messages/{id}/thread': 'hidden',
  'PUT /api/v1/messages/{id}/follow': 'hidden',
  'DELETE /api/v1/messages/{id}/follow': 'hidden',
  'GET /api/v1/personas': 'allowed',
  'GET /api/v1/personas/{id}': 'allowed',
  'POST /api/v1/personas': 'admin-only',
  'PATCH /api/v1/personas/{id}': 'admin-only',
  'DELETE /api/v1/personas/{id}': 'admin-only',
  'GET /api/v1/rooms/{id}/personas': 'hidden',
  'POST /api/v1/rooms/{id}/personas/{personaId}': 'admin-only',
  'DELETE /api/v1/rooms/{id}/personas/{personaId}': 'admin-only',
  'GET /api/v1/rooms/{id}/personas/{personaId}/summary': 'hidden',
  'DELETE /api/v1/rooms/{id}/personas/{personaId}/summary': 'hidden',
  'POST /api/v1/personas/streams/{streamId}/cancel': 'hidden',
  'GET /api/v1/rooms/{id}/persona-policy': 'hidden',
  'PUT /api/v1/rooms/{id}/persona-policy': 'hidden',
  'GET /api/v1/conversations': 'allowed',
  'POST /api/v1/conversations': 'self',
  'GET /api/v1/conversations/{id}': 'hidden',
  'PATCH /api/v1/conversations/{id}': 'hidden',
  'DELETE /api/v1/conversations/{id}': 'hidden',
  'PUT /api/v1/rooms/{id}/notifications': 'hidden',
  'GET /api/v1/notifications': 'self',
  'GET /api/v1/notifications/unread-count': 'self',
  'POST /api/v1/notifications/read': 'hidden',
  'POST /api/v1/notifications/{id}/read': 'hidden',

  'PUT /api/v1/rooms/{id}/members/{userId}/role': 'hidden',
  'POST /api/v1/rooms/{id}/mutes': 'hidden',
  'DELETE /api/v1/rooms/{id}/mutes/{userId}': 'hidden',
  'POST /api/v1/rooms/{id}/bans': 'hidden',
  'GET /api/v1/rooms/{id}/bans': 'hidden',
  'DELETE /api/v1/rooms/{id}/bans/{userId}': 'hidden',
  'POST /api/v1/rooms/{id}/archive': 'admin-only',
  'DELETE /api/v1/rooms/{id}/archive': 'admin-only',
  'PUT /api/v1/rooms/{id}/slow-mode': 'hidden',
  'GET /api/v1/rooms/{id}/filters': 'hidden',
  'POST /api/v1/rooms/{id}/filters': 'hidden',
  'DELETE /api/v1/rooms/{id}/filters/{filterId}': 'hidden',
  'GET /api/v1/admin/filters': 'admin-only',
  'POST /api/v1/admin/filters': 'admin-only',
  'DELETE /api/v1/admin/filters/{filterId}': 'admin-only',
  'GET /api/v1/admin/audit': 'admin-only',
  'GET /api/v1/admin/audit/export': 'admin-only',
  'GET /api/v1/admin/usage': 'admin-only',
  'POST /api/v1/push/pushers': 'self',
  'GET /api/v1/push/pushers': 'self',
  'DELETE /api/v1/push/pushers/{id}': 'hidden',
  'GET /api/v1/push/settings': 'self',
  'PUT /api/v1/push/settings': 'self',
  'POST /api/v1/rooms/{id}/attachments': 'hidden',
  'POST /api/v1/rooms/{id}/attachments/uploads': 'hidden',
  'POST /api/v1/attachments/{id}/complete': 'hidden',
  'GET /api/v1/attachments/{id}': 'hidden',
  'GET /api/v1/attachments/{id}/thumbnail': 'hidden',
  'GET /health': 'skip',
  'GET /health/ready': 'skip',
};

/** A valid body per operation, so a refusal is about who asks, not about what was sent. */
function bodyFor(op: string, ctx: Ctx): object | undefined {
  const bodies: Record<string, object> = {
    'PATCH /api/v1/users/{id}': { role: 'admin' },
    'POST /api/v1/users/{id}/suspension': { durationSec: 3600, reason: 'taken over' },
    'POST /api/v1/messages/{id}/reports': { category: 'spam' },
    'POST /api/v1/reports/{id}/resolve': { action: 'delete', reason: 'taken over' },
    'POST /api/v1/reports/{id}/dismiss': { note: 'taken over' },
    'POST /api/v1/rooms': { name: `r-${randomUUID()}`, visibility: 'public' },
    'PUT /api/v1/rooms/{id}/members/{userId}/role': { role: 'moderator' },
    'POST /api/v1/rooms/{id}/mutes': { userId: ctx.alice.id, reason: 'taken over' },
    'POST /api/v1/rooms/{id}/bans': { userId: ctx.alice.id, reason: 'taken over' },
    'PUT /api/v1/rooms/{id}/slow-mode': { seconds: 60 },
    'PUT /api/v1/rooms/{id}/persona-policy': { policy: 'auto', crossTalk: true },
    'POST /api/v1/rooms/{id}/filters': { pattern: 'taken', action: 'block' },
    'POST /api/v1/admin/filters': { pattern: 'taken', action: 'block' },
    'PATCH /api/v1/rooms/{id}': { name: 'taken over' },
    'POST /api/v1/rooms/{id}/members': { userId: ctx.mallory.id },
    'PUT /api/v1/rooms/{id}/read': { messageId: ctx.messageId },
    'PUT /api/v1/rooms/{id}/notifications': { level: 'all' },
    'POST /api/v1/notifications/read': { roomId: ctx.roomId },
    'POST /api/v1/rooms/{id}/messages': { clientMsgId: randomUUID(), content: 'hi' },
    'PATCH /api/v1/messages/{id}': { content: 'edited by mallory' },
    'POST /api/v1/personas': { handle: `p${Date.now()}`, displayName: 'P' },
    'PATCH /api/v1/personas/{id}': { systemPrompt: 'leak everything' },
    'POST /api/v1/conversations': { personaId: ctx.personaId },
    'PATCH /api/v1/conversations/{id}': { title: 'mine now' },
    'POST /api/v1/push/pushers': {
      kind: 'http',
      url: 'https://push.example.com/notify',
      appId: 'com.example.parlor',
      pushKey: `mallory-${randomUUID()}`,
    },
    'PUT /api/v1/push/settings': { hideContent: true },
    'POST /api/v1/rooms/{id}/attachments/uploads': { name: 'x.png', size: 10 },
  };
  return bodies[op];
}

interface Ctx {
  admin: TestUser;
  alice: TestUser;
  mallory: TestUser;
  roomId: string;
  messageId: number;
  personaId: string;
  conversationId: string;
  /** Alice's pusher. */
  pusherId: string;
  /** An image Alice sent in the private room. */
  attachmentId: string;
}

/** Path parameters: the private room, or the conversation for /conversations/{id}. */
function pathFor(template: string, ctx: Ctx, target: 'room' | 'conversation'): string {
  const roomOrConv = target === 'room' ? ctx.roomId : ctx.conversationId;
  return template
    .replace(
      '{id}',
      template.startsWith('/api/v1/messages') || template.startsWith('/api/v1/notifications')
        ? String(ctx.messageId) // no notification of the outsider's has this id
        : template.startsWith('/api/v1/users')
          ? ctx.alice.id
          : template.startsWith('/api/v1/personas/{id}')
            ? ctx.personaId
            : template.startsWith('/api/v1/push/pushers/{id}')
              ? ctx.pusherId
              : template.startsWith('/api/v1/attachments/{id}')
                ? ctx.attachmentId
                : roomOrConv,
    )
    .replace('{userId}', ctx.alice.id)
    .replace('{personaId}', ctx.personaId)
    .replace('{emoji}', encodeURIComponent('👍'))
    .replace('{streamId}', randomUUID())
    .replace('{filterId}', randomUUID());
}

describe('security: access control', () => {
  let t: TestApp;
  let ctx: Ctx;
  let operations: string[];
  const sockets: ClientSocket[] = [];

  beforeAll(async () => {
    t = await startApp({
      ...ADMIN_ENV,
      PUSH_HMAC_SECRET: 'access-control-push-secret-0123456789',
      PUSH_ALLOWED_HOSTS: 'push.example.com',
    });
    const admin = await loginAdmin(t);
    const [alice, mallory] = [await newUser(t), await newUser(t)];
    const room = await newRoom(t, admin, { visibility: 'private', name: SECRET_ROOM });
    await t
      .http()
      .post(`/api/v1/rooms/${room.id}/members`)
      .set(admin.auth)
      .send({ userId: alice.id })
      .expect(201);
    const message = await send(t, alice, room.id, SECRET_TEXT);
    await t
      .http()
      .put(`/api/v1/messages/${message.id}/reactions/${encodeURIComponent('👍')}`)
      .set(alice.auth)
      .expect(200);
    const image = await sharp({
      create: { width: 4, height: 4, channels: 3, background: { r: 0, g: 0, b: 0 } },
    })
      .png()
      .toBuffer();
    const attachment = await t
      .http()
      .post(`/api/v1/rooms/${room.id}/attachments`)
      .set(alice.auth)
      .attach('file', image, 'secret.png')
      .expect(201);
    await t
      .http()
      .post(`/api/v1/rooms/${room.id}/messages`)
      .set(alice.auth)
      .send({ clientMsgId: randomUUID(), content: '', attachmentIds: [attachment.body.id] })
      .expect(201);
    const persona = await t
      .http()
      .post('/api/v1/personas')
      .set(admin.auth)
      .send({ handle: 'oracle', displayName: 'Oracle', systemPrompt: 'hidden prompt' })
      .expect(201);
    const conv = await t
      .http()
      .post('/api/v1/conversations')
      .set(alice.auth)
      .send({ personaId: persona.body.id, title: SECRET_CONV })
      .expect(201);
    await send(t, alice, conv.body.id, `${SECRET_TEXT} in conversation`);
    const pusher = await t
      .http()
      .post('/api/v1/push/pushers')
      .set(alice.auth)
      .send({
        kind: 'http',
        url: 'https://push.example.com/notify',
        appId: 'com.example.parlor',
        pushKey: 'alice-device',
      })
      .expect(201);
    ctx = {
      admin,
      alice,
      mallory,
      roomId: room.id,
      messageId: message.id,
      personaId: persona.body.id,
      conversationId: conv.body.id,
      pusherId: (pusher.body as { id: string }).id,
      attachmentId: (attachment.body as { id: string }).id,
    };
    const doc = (await t.http().get('/docs-json').expect(200)).body as {
      paths: Record<string, Record<string, unknown>>;
    };
    operations = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
  });
  afterEach(() => {
    for (const s of sockets.splice(0)) s.close();
  });
  afterAll(() => t.close());

  it('every operation in the OpenAPI document is classified here', () => {
    expect(operations.filter((op) => !(op in ROUTES))).toEqual([]);
  });

  it('an outsider gets 403 on admin functions and 404 on private objects, with nothing in the body', async () => {
    const failures: string[] = [];
    for (const op of operations) {
      const kind = ROUTES[op];
      if (kind === 'skip' || kind === undefined) continue;
      const [method, template] = op.split(' ');
      const targets: ('room' | 'conversation')[] = template.includes('/rooms/{id}')
        ? ['room', 'conversation']
        : template.startsWith('/api/v1/conversations/{id}')
          ? ['conversation']
          : ['room'];
      for (const target of targets) {
        const query: Record<string, string> = template.endsWith('/changes')
          ? { since: '0' }
          : template.endsWith('/search')
            ? { q: SECRET_TEXT }
            : {};
        const path = pathFor(template, ctx, target);
        const http = t.http();
        const res = await http[method.toLowerCase() as 'get'](path)
          .query(query)
          .set(ctx.mallory.auth)
          .send(bodyFor(op, ctx));
        const text = JSON.stringify(res.body ?? '') + (res.text ?? '');
        const leaked = SECRETS.filter((s) => text.includes(s));
        if (leaked.length) failures.push(`${method} ${path}: leaked ${leaked.join(', ')}`);
        if (text.includes('hidden prompt'))
          failures.push(`${method} ${path}: leaked a system prompt`);
        const expected =
          kind === 'admin-only' ? [403] : kind === 'hidden' ? [404] : [200, 201, 204];
        if (!expected.includes(res.status))
          failures.push(
            `${method} ${path} (${target}): ${res.status}, expected ${expected.join('/')}`,
          );
        if (res.status >= 400) {
          try {
            expectErrorOnly(res.body);
          } catch {
            failures.push(
              `${method} ${path}: error body has extra keys ${Object.keys(res.body).join(', ')}`,
            );
          }
        }
      }
    }
    expect(failures).toEqual([]);
    // …and none of it changed anything: alice still reads her room, message and conversation.
    const page = await t
      .http()
      .get(`/api/v1/rooms/${ctx.roomId}/messages`)
      .set(ctx.alice.auth)
      .expect(200);
    expect(page.body.items.map((m: { content?: string }) => m.content)).toContain(SECRET_TEXT);
    await t
      .http()
      .get(`/api/v1/conversations/${ctx.conversationId}`)
      .set(ctx.alice.auth)
      .expect(200);
    const members = await t
      .http()
      .get(`/api/v1/rooms/${ctx.roomId}/members`)
      .set(ctx.alice.auth)
      .expect(200);
    expect(members.body.items.map((m: { userId: string }) => m.userId)).not.toContain(
      ctx.mallory.id,
    );
    const pushers = await t.http().get('/api/v1/push/pushers').set(ctx.alice.auth).expect(200);
    expect(pushers.body).toEqual([expect.objectContaining({ id: ctx.pusherId })]);
    const mallorys = await t.http().get('/api/v1/push/pushers').set(ctx.mallory.auth).expect(200);
    expect(JSON.stringify(mallorys.body)).not.toContain('alice-device');
  });

  it('public profiles carry no email or flags (lists were swept for secrets above)', async () => {
    const profile = await t
      .http()
      .get(`/api/v1/users/${ctx.alice.id}`)
      .set(ctx.mallory.auth)
      .expect(200);
    expect(Object.keys(profile.body).sort()).toEqual([
      'createdAt',
      'displayName',
      'id',
      'role',
      'username',
    ]);
  });

  it('every socket command on the private room, its message or the conversation: NOT_FOUND/FORBIDDEN, no data', async () => {
    const s = await connect(t, ctx.mallory.accessToken);
    sockets.push(s);
    const received: string[] = [];
    s.onAny((event: string) => received.push(event));
    const payloads = (roomId: string): Record<CommandName, object> => ({
      'room.join': { roomId },
      'room.leave': { roomId },
      'message.send': { roomId, clientMsgId: randomUUID(), content: 'hi' },
      'message.edit': { messageId: ctx.messageId, content: 'mine' },
      'message.delete': { messageId: ctx.messageId },
      'message.report': { messageId: ctx.messageId, category: 'spam' },
      'reaction.add': { messageId: ctx.messageId, emoji: '👍' },
      'reaction.remove': { messageId: ctx.messageId, emoji: '👍' },
      'typing.start': { roomId },
      'typing.stop': { roomId },
      'read.mark': { roomId, messageId: ctx.messageId },
      'notification.read': { roomId },
      'history.fetch': { roomId },
      'thread.fetch': { messageId: ctx.messageId },
      'persona.cancel': { messageId: randomUUID() },
      'auth.refresh': { accessToken: ctx.alice.accessToken },
    });
    const failures: string[] = [];
    for (const roomId of [ctx.roomId, ctx.conversationId]) {
      const p = payloads(roomId);
      for (const name of COMMAND_NAMES) {
        const ack = await call(s, name, p[name] as never);
        const text = JSON.stringify(ack);
        if (ack.ok) failures.push(`${name} on ${roomId}: ok`);
        else if (!['NOT_FOUND', 'FORBIDDEN'].includes(ack.error.code))
          failures.push(`${name}: ${ack.error.code}`);
        if (SECRETS.some((x) => text.includes(x))) failures.push(`${name}: leaked`);
      }
    }
    expect(failures).toEqual([]);
    // The outsider's socket heard nothing from the room while alice kept talking.
    await send(t, ctx.alice, ctx.roomId, `${SECRET_TEXT} later`);
    await new Promise((r) => setTimeout(r, 200));
    expect(received.filter((e) => e.startsWith('message.') || e === 'typing')).toEqual([]);
  });

  it('a plain user cannot reach admin functions over the socket either: no command changes roles or rooms', () => {
    // The contract has no admin command at all: admin functions exist only over REST (above).
    expect(
      COMMAND_NAMES.filter((c) => /admin|role|user\.|room\.(create|delete|update)/.test(c)),
    ).toEqual([]);
  });

  it('a member cannot edit or delete another member’s message, over REST or the socket', async () => {
    const bob = await newUser(t);
    await t
      .http()
      .post(`/api/v1/rooms/${ctx.roomId}/members`)
      .set(ctx.admin.auth)
      .send({ userId: bob.id })
      .expect(201);
    await t
      .http()
      .patch(`/api/v1/messages/${ctx.messageId}`)
      .set(bob.auth)
      .send({ content: 'bob was here' })
      .expect(403);
    await t.http().delete(`/api/v1/messages/${ctx.messageId}`).set(bob.auth).expect(403);
    const s = await connect(t, bob.accessToken);
    sockets.push(s);
    expect(await call(s, 'message.edit', { messageId: ctx.messageId, content: 'x' })).toMatchObject(
      {
        ok: false,
        error: { code: 'FORBIDDEN' },
      },
    );
    expect(await call(s, 'message.delete', { messageId: ctx.messageId })).toMatchObject({
      ok: false,
      error: { code: 'FORBIDDEN' },
    });
  });

  describe('mass assignment: fields a caller may not set are refused with 400', () => {
    const cases: [string, string, string, () => object, 'admin' | 'alice'][] = [
      [
        'signup role',
        'post',
        '/api/v1/auth/signup',
        () => ({ ...signupBody(), role: 'admin' }),
        'alice',
      ],
      [
        'signup isAdmin',
        'post',
        '/api/v1/auth/signup',
        () => ({ ...signupBody(), isAdmin: true }),
        'alice',
      ],
      [
        'signup id',
        'post',
        '/api/v1/auth/signup',
        () => ({ ...signupBody(), id: randomUUID() }),
        'alice',
      ],
      [
        'signup disabled',
        'post',
        '/api/v1/auth/signup',
        () => ({ ...signupBody(), disabled: false }),
        'alice',
      ],
      [
        'message authorId',
        'post',
        'ROOM/messages',
        () => ({ clientMsgId: randomUUID(), content: 'x', authorId: randomUUID() }),
        'alice',
      ],
      [
        'message roomId',
        'post',
        'ROOM/messages',
        () => ({ clientMsgId: randomUUID(), content: 'x', roomId: randomUUID() }),
        'alice',
      ],
      [
        'message role',
        'post',
        'ROOM/messages',
        () => ({ clientMsgId: randomUUID(), content: 'x', role: 'system' }),
        'alice',
      ],
      [
        'message personaId',
        'post',
        'ROOM/messages',
        () => ({ clientMsgId: randomUUID(), content: 'x', personaId: randomUUID() }),
        'alice',
      ],
      [
        'message id and version',
        'post',
        'ROOM/messages',
        () => ({ clientMsgId: randomUUID(), content: 'x', id: 1, version: 1 }),
        'alice',
      ],
      [
        'edit authorId',
        'patch',
        'MESSAGE',
        () => ({ content: 'x', authorId: randomUUID() }),
        'alice',
      ],
      ['edit roomId', 'patch', 'MESSAGE', () => ({ content: 'x', roomId: randomUUID() }), 'alice'],
      ['read userId', 'put', 'ROOM/read', () => ({ messageId: 1, userId: randomUUID() }), 'alice'],
      [
        'invite with role owner',
        'post',
        'ROOM/members',
        () => ({ userId: randomUUID(), role: 'owner' }),
        'admin',
      ],
      [
        'room kind',
        'post',
        '/api/v1/rooms',
        () => ({ name: `k-${randomUUID()}`, visibility: 'public', kind: 'direct' }),
        'admin',
      ],
      [
        'room createdBy',
        'post',
        '/api/v1/rooms',
        () => ({ name: `c-${randomUUID()}`, visibility: 'public', createdBy: randomUUID() }),
        'admin',
      ],
      ['room update kind', 'patch', 'ROOM', () => ({ kind: 'conversation' }), 'admin'],
      ['user passwordHash', 'patch', 'ALICE', () => ({ passwordHash: 'x' }), 'admin'],
      ['user email', 'patch', 'ALICE', () => ({ email: 'evil@example.com' }), 'admin'],
      [
        'conversation ownerId',
        'post',
        '/api/v1/conversations',
        () => ({ personaId: ctx.personaId, ownerId: randomUUID() }),
        'alice',
      ],
      [
        'persona createdBy',
        'post',
        '/api/v1/personas',
        () => ({ handle: 'zz_x', displayName: 'Z', createdBy: randomUUID() }),
        'admin',
      ],
    ];
    const signupBody = () => {
      const u = `u${randomUUID().slice(0, 8)}`;
      return { username: u, email: `${u}@example.com`, password: 'password-123' };
    };
    it.each(cases)('%s', async (_, method, template, body, who) => {
      const path = template
        .replace('ROOM', `/api/v1/rooms/${ctx.roomId}`)
        .replace('MESSAGE', `/api/v1/messages/${ctx.messageId}`)
        .replace('ALICE', `/api/v1/users/${ctx.alice.id}`);
      const http = t.http();
      const res = await http[method as 'post'](path)
        .set((who === 'admin' ? ctx.admin : ctx.alice).auth)
        .send(body());
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('VALIDATION_FAILED');
    });

    it('over the socket too: message.send with authorId or role, room.join with userId', async () => {
      const s = await connect(t, ctx.alice.accessToken);
      sockets.push(s);
      for (const [name, payload] of [
        [
          'message.send',
          { roomId: ctx.roomId, clientMsgId: randomUUID(), content: 'x', authorId: ctx.mallory.id },
        ],
        [
          'message.send',
          { roomId: ctx.roomId, clientMsgId: randomUUID(), content: 'x', role: 'system' },
        ],
        ['room.join', { roomId: ctx.roomId, userId: ctx.mallory.id }],
        ['message.edit', { messageId: ctx.messageId, content: 'x', authorId: ctx.mallory.id }],
      ] as const) {
        expect(await call(s, name, payload as never)).toMatchObject({
          ok: false,
          error: { code: 'VALIDATION_FAILED' },
        });
      }
      const me = await t.http().get('/api/v1/auth/me').set(ctx.alice.auth).expect(200);
      expect(me.body.role).toBe('user');
    });

    it('a plain user cannot promote themself', async () => {
      await t
        .http()
        .patch(`/api/v1/users/${ctx.mallory.id}`)
        .set(ctx.mallory.auth)
        .send({ role: 'admin' })
        .expect(403);
      const me = await t.http().get('/api/v1/auth/me').set(ctx.mallory.auth).expect(200);
      expect(me.body.role).toBe('user');
    });
  });
});
