import { jest } from '@jest/globals';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { DataSource } from 'typeorm';
import type { PgEndpoint } from '../src/database/database.module';
import { AccessPolicy } from '../src/access/access.policy';
import { EmbeddedPostgres } from '../src/database/embedded-postgres';
import { PushService } from '../src/push/push.service';
import { startApp, type TestApp } from './support/app';
import { SERVER_URL, templatePath, testEndpoint } from './support/database';
import {
  ADMIN_ENV,
  join,
  loginAdmin,
  newRoom,
  newUser,
  NO_WRITE_LIMITS,
  send,
  type TestUser,
} from './support/factories';
import { type ClientSocket, connect, sleep } from './support/socket';

/**
 * The push outbox against a gateway this test runs (node:http): signed delivery, retries with
 * backoff, dedupe, a restart with pushes pending, gone push keys, URL checks (SSRF), presence
 * on one and two instances, hidden content. Notifications are rows written here and handed to
 * PushService.enqueue, the entry point the `notification.created` listener uses.
 */
const SECRET = 'push-secret-push-secret-push-secret-0123';
const api = (path: string) => `/api/v1${path}`;

interface Received {
  signature: string | undefined;
  raw: string;
  body: {
    notification: {
      id: number;
      kind: string;
      roomId: string;
      roomName: string;
      sender: string | null;
      senderDisplayName: string | null;
      content?: { body: string };
      counts: { unread: number };
      devices: { app_id: string; pushkey: string; data: { lang: string } }[];
    };
  };
  at: number;
  /** The gateway's own check of the signature, with the shared key. */
  verified: boolean;
}

/** A push gateway: records every request, verifies its HMAC, answers as `respond` says. */
class Gateway {
  readonly received: Received[] = [];
  respond: (r: Received) => { status: number; body?: unknown } | 'hang' = () => ({
    status: 200,
    body: { rejected: [] },
  });
  private readonly hung: (() => void)[] = [];
  private constructor(private readonly server: Server) {}

  static async start(): Promise<Gateway> {
    const server = createServer();
    const gw = new Gateway(server);
    server.on('request', (req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const signature = req.headers['x-parlor-signature'] as string | undefined;
        const expected = Buffer.from(
          `sha256=${createHmac('sha256', SECRET).update(raw).digest('hex')}`,
        );
        const given = Buffer.from(signature ?? '');
        const r: Received = {
          signature,
          raw,
          body: JSON.parse(raw) as Received['body'],
          at: Date.now(),
          verified: given.length === expected.length && timingSafeEqual(given, expected),
        };
        gw.received.push(r);
        const answer = gw.respond(r);
        if (answer === 'hang') {
          gw.hung.push(() => res.destroy());
          return;
        }
        res.writeHead(answer.status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(answer.body ?? {}));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return gw;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }
  get url(): string {
    return `http://127.0.0.1:${this.port}/_parlor/push/v1/notify`;
  }
  for(pushKey: string): Received[] {
    return this.received.filter((r) => r.body.notification.devices[0].pushkey === pushKey);
  }
  async close(): Promise<void> {
    this.hung.forEach((end) => end());
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>;

async function until<T>(
  probe: () => Promise<T> | T,
  what: string,
  ms = 10_000,
): Promise<Truthy<T>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v as Truthy<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const PUSH_ENV = {
  ...ADMIN_ENV,
  ...NO_WRITE_LIMITS,
  RATE_LIMIT_PUSH: '1000',
  PUSH_HMAC_SECRET: SECRET,
  PUSH_ALLOW_HTTP: 'true',
  PUSH_ALLOWED_HOSTS: '127.0.0.1',
  PUSH_MAX_PUSHERS_PER_USER: '3',
  PUSH_POLL_MS: '100',
  PUSH_TIMEOUT_MS: '2000',
  PUSH_LEASE_MS: '5000',
  PUSH_RETRY_BASE_MS: '200',
  PUSH_RETRY_MAX_MS: '1000',
  PUSH_MAX_AGE_MS: '600000',
};

/** A room where `sender` writes and `recipient` (who has a device) is notified. */
interface Scene {
  roomId: string;
  roomName: string;
  admin: TestUser;
  sender: TestUser;
  recipient: TestUser;
  pushKey: string;
}

function registerPusher(
  t: TestApp,
  user: TestUser,
  url: string,
  pushKey = randomBytes(8).toString('hex'),
  appId = 'com.example.parlor',
) {
  return t
    .http()
    .post(api('/push/pushers'))
    .set(user.auth)
    .send({ kind: 'http', url, appId, pushKey, deviceName: 'phone', lang: 'fr' });
}

/** With `gw`, the recipient registers a pusher to it (`pushKey`); without, none. */
async function scene(t: TestApp, gw?: Gateway): Promise<Scene> {
  const admin = await loginAdmin(t);
  const room = await newRoom(t, admin);
  const sender = await newUser(t);
  const recipient = await newUser(t);
  await join(t, sender, room.id);
  await join(t, recipient, room.id);
  const pushKey = randomBytes(8).toString('hex');
  if (gw) await registerPusher(t, recipient, gw.url, pushKey).expect(201);
  return { roomId: room.id, roomName: room.name, admin, sender, recipient, pushKey };
}

/** `sender` writes; a notification row for `recipient` (as the notifications module writes). */
async function notification(t: TestApp, s: Scene, content = 'hello there'): Promise<string> {
  return (await notified(t, s, content)).id;
}

/** As `notification`, answering the message's id too. */
async function notified(
  t: TestApp,
  s: Scene,
  content: string,
): Promise<{ id: string; messageId: number }> {
  const m = await send(t, s.sender, s.roomId, content);
  const [row] = await t.app.get(DataSource).query<{ id: string }[]>(
    `INSERT INTO notifications (user_id, room_id, message_id, kind, actor_id)
       VALUES ($1, $2, $3, 'mention', $4) RETURNING id::text AS id`,
    [s.recipient.id, s.roomId, m.id, s.sender.id],
  );
  return { id: row.id, messageId: m.id };
}

/** Another session of `u` (another device, or a thief with the password): a fresh login. */
async function login(t: TestApp, u: TestUser): Promise<TestUser> {
  const res = await t
    .http()
    .post(api('/auth/login'))
    .send({ username: u.username, password: u.password })
    .expect(200);
  const body = res.body as { accessToken: string; refreshToken: string };
  return {
    ...u,
    accessToken: body.accessToken,
    refreshToken: body.refreshToken,
    auth: { Authorization: `Bearer ${body.accessToken}` },
  };
}

/** The push keys of `u`'s pushers (GET /api/v1/push/pushers). */
async function pushKeysOf(t: TestApp, u: TestUser): Promise<string[]> {
  const res = await t.http().get(api('/push/pushers')).set(u.auth).expect(200);
  return (res.body as { pushKey: string }[]).map((p) => p.pushKey);
}

/**
 * A direct room: every message in it notifies the other member (the notifications module, as
 * in production). `recipient` has a pusher to `gw`.
 */
async function directScene(t: TestApp, gw: Gateway) {
  const sender = await newUser(t);
  const recipient = await newUser(t);
  const pushKey = randomBytes(8).toString('hex');
  await registerPusher(t, recipient, gw.url, pushKey).expect(201);
  const dm = await t
    .http()
    .post(api(`/direct/${recipient.id}`))
    .set(sender.auth)
    .expect(200);
  return { sender, recipient, pushKey, roomId: (dm.body as { id: string }).id };
}

/** The recipient's notifications, newest first (GET /api/v1/notifications). */
async function notificationsOf(t: TestApp, u: TestUser): Promise<{ id: number; kind: string }[]> {
  const res = await t.http().get(api('/notifications')).set(u.auth).expect(200);
  return (res.body as { items: { id: number; kind: string }[] }).items;
}

interface OutboxRow {
  id: string;
  attempts: number;
  last_error: string | null;
  next_attempt_at: Date;
  payload: Record<string, unknown>;
  created_at: Date;
}

/** Outbox rows (of one push key): pending ones, or with `all` the delivered ones kept too. */
const outbox = async (t: TestApp, pushKey?: string, all = false) =>
  (
    await t.app.get(DataSource).query<OutboxRow[]>(
      `SELECT o.id::text AS id, o.attempts, o.last_error, o.next_attempt_at, o.payload, o.created_at
         FROM push_outbox o JOIN pushers p ON p.id = o.pusher_id
        WHERE $1::varchar IS NULL OR p.push_key = $1`,
      [pushKey ?? null],
    )
  ).filter((r) => all || Object.keys(r.payload).length > 0);

describe('push gateway (e2e)', () => {
  let t: TestApp;
  let gw: Gateway;
  let push: PushService;

  beforeAll(async () => {
    gw = await Gateway.start();
    t = await startApp(PUSH_ENV);
    push = t.app.get(PushService);
  });
  afterAll(async () => {
    await t?.close();
    await gw?.close();
  });
  beforeEach(() => {
    gw.respond = () => ({ status: 200, body: { rejected: [] } });
  });

  it('delivers a signed push the gateway verifies, then deletes the outbox row', async () => {
    const s = await scene(t, gw);
    const id = await notification(t, s, 'Are you coming to the  meeting?');
    expect(await push.enqueue([id])).toBe(1);
    const [r] = await until(() => gw.for(s.pushKey).length && gw.for(s.pushKey), 'the push');
    expect(r.signature).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(r.verified).toBe(true);
    // The check is real: the same signature over an altered body, or another key, fails.
    const hmac = (key: string, body: string) =>
      `sha256=${createHmac('sha256', key).update(body).digest('hex')}`;
    expect(hmac(SECRET, r.raw.replace('meeting', 'meetinG'))).not.toBe(r.signature);
    expect(hmac('another-key', r.raw)).not.toBe(r.signature);
    expect(r.body.notification).toMatchObject({
      id: Number(id),
      kind: 'mention',
      roomId: s.roomId,
      roomName: s.roomName,
      sender: s.sender.username,
      content: { body: 'Are you coming to the meeting?' },
      counts: { unread: 1 },
      devices: [{ app_id: 'com.example.parlor', pushkey: s.pushKey, data: { lang: 'fr' } }],
    });
    await until(async () => (await outbox(t, s.pushKey)).length === 0, 'the row delivered');
    // Kept for dedupe until PUSH_MAX_AGE_MS after it was written, without the message text.
    const [kept] = await outbox(t, s.pushKey, true);
    expect(kept.payload).toEqual({});
    expect(kept.last_error).toBeNull();
    expect(new Date(kept.next_attempt_at).getTime() - new Date(kept.created_at).getTime()).toBe(
      Number(PUSH_ENV.PUSH_MAX_AGE_MS),
    );
    const metrics = await t.http().get('/metrics').expect(200);
    expect(metrics.text).toMatch(/parlor_push_deliveries_total\{result="delivered"\} [1-9]/);
  });

  it('a direct message to a user with no socket reaches their phone (real notifications)', async () => {
    const d = await directScene(t, gw);
    await send(t, d.sender, d.roomId, 'Dinner at eight?');
    const [r] = await until(() => gw.for(d.pushKey).length && gw.for(d.pushKey), 'the push');
    const [n] = await notificationsOf(t, d.recipient);
    expect(r.verified).toBe(true);
    expect(r.body.notification).toMatchObject({
      id: n.id,
      kind: 'direct',
      roomId: d.roomId,
      sender: d.sender.username,
      content: { body: 'Dinner at eight?' },
      counts: { unread: 1 },
    });
    // hideContent, through the same path
    await t
      .http()
      .put(api('/push/settings'))
      .set(d.recipient.auth)
      .send({ hideContent: true })
      .expect(200);
    await send(t, d.sender, d.roomId, 'the surprise party');
    const second = await until(() => gw.for(d.pushKey)[1], 'the second push');
    expect(second.raw).not.toContain('surprise');
    expect(second.body.notification.counts.unread).toBe(2);
  });

  it('with a socket open, the notification reaches the socket and no push is sent (real notifications)', async () => {
    const d = await directScene(t, gw);
    const socket = await connect(t, d.recipient.accessToken);
    try {
      const live = new Promise((resolve) => socket.once('notification.created', resolve));
      await send(t, d.sender, d.roomId, 'are you there?');
      await live;
      await until(async () => (await notificationsOf(t, d.recipient)).length === 1, 'stored');
      await sleep(500);
      expect(gw.for(d.pushKey)).toHaveLength(0);
      expect(await outbox(t, d.pushKey, true)).toEqual([]);
    } finally {
      socket.close();
    }
  });

  it('hideContent: pushes carry no message text', async () => {
    const s = await scene(t, gw);
    expect(
      (await t.http().get(api('/push/settings')).set(s.recipient.auth).expect(200)).body,
    ).toEqual({ hideContent: false });
    await t
      .http()
      .put(api('/push/settings'))
      .set(s.recipient.auth)
      .send({ hideContent: true })
      .expect(200, { hideContent: true });
    await push.enqueue([await notification(t, s, 'the secret plan')]);
    const [r] = await until(() => gw.for(s.pushKey).length && gw.for(s.pushKey), 'the push');
    expect(r.body.notification.content).toBeUndefined();
    expect(r.raw).not.toContain('secret plan');
    expect(r.body.notification.sender).toBe(s.sender.username);
    await t
      .http()
      .put(api('/push/settings'))
      .set(s.recipient.auth)
      .send({ hideContent: 'yes' })
      .expect(400);
  });

  it('retries after 500s with growing, jittered delays, then delivers once', async () => {
    const s = await scene(t, gw);
    let failures = 2;
    gw.respond = () => (failures-- > 0 ? { status: 500 } : { status: 200 });
    const id = await notification(t, s);
    await push.enqueue([id]);
    const first = await until(() => gw.for(s.pushKey).length === 1, 'the first attempt');
    expect(first).toBe(true);
    const [row] = await until(async () => {
      const rows = await outbox(t, s.pushKey);
      return rows[0]?.attempts === 1 && rows;
    }, 'the failure recorded');
    expect(row.last_error).toBe('HTTP 500');
    const tries = await until(() => gw.for(s.pushKey).length === 3 && gw.for(s.pushKey), '3 tries');
    // base 200 ms: the 1st retry waits 100–200 ms, the 2nd 200–400 ms (half to all of base×2^n).
    expect(tries[1].at - tries[0].at).toBeGreaterThanOrEqual(95);
    expect(tries[2].at - tries[1].at).toBeGreaterThanOrEqual(195);
    expect(tries.every((r) => r.body.notification.id === Number(id) && r.verified)).toBe(true);
    await until(async () => (await outbox(t, s.pushKey)).length === 0, 'the row delivered');
    await sleep(500);
    expect(gw.for(s.pushKey)).toHaveLength(3);
  });

  it('a row claimed by an instance that died is delivered once its lease runs out', async () => {
    const s = await scene(t, gw);
    const id = await notification(t, s);
    // What a claim leaves behind when its instance dies before the answer: a row whose next
    // attempt is the lease's end.
    await t.app.get(DataSource).query(
      `INSERT INTO push_outbox (notification_id, pusher_id, payload, next_attempt_at)
       SELECT $1, p.id, jsonb_build_object('notification',
                jsonb_build_object('devices', jsonb_build_array(jsonb_build_object('pushkey', p.push_key)))),
              now() + interval '1500 milliseconds'
         FROM pushers p WHERE p.push_key = $2`,
      [id, s.pushKey],
    );
    await sleep(700);
    expect(gw.for(s.pushKey)).toHaveLength(0);
    await until(() => gw.for(s.pushKey).length === 1, 'the push after the lease');
    await until(async () => (await outbox(t, s.pushKey)).length === 0, 'the row delivered');
  });

  it('dedupes: the same notification enqueued twice (even at once) is one push per device', async () => {
    const s = await scene(t, gw);
    const second = randomBytes(8).toString('hex');
    await registerPusher(t, s.recipient, gw.url, second, 'com.example.parlor.tablet').expect(201);
    const id = await notification(t, s);
    const written = await Promise.all([push.enqueue([id]), push.enqueue([id, id])]);
    expect(written.reduce((a, b) => a + b, 0)).toBe(2);
    expect(await push.enqueue([id])).toBe(0);
    await until(() => gw.for(s.pushKey).length && gw.for(second).length, 'both devices');
    await until(async () => (await outbox(t, s.pushKey)).length === 0, 'the row delivered');
    expect(await push.enqueue([id])).toBe(0); // after delivery too
    await sleep(500);
    expect(gw.for(s.pushKey)).toHaveLength(1);
    expect(gw.for(second)).toHaveLength(1);
  });

  it('a 410 answer removes the pusher (and a 200 naming the key in `rejected` does too)', async () => {
    const s = await scene(t, gw);
    const other = randomBytes(8).toString('hex');
    const otherPusher = (await registerPusher(t, s.recipient, gw.url, other).expect(201)).body as {
      id: string;
    };
    gw.respond = (r) =>
      r.body.notification.devices[0].pushkey === s.pushKey
        ? { status: 410 }
        : { status: 200, body: { rejected: [other] } };
    await push.enqueue([await notification(t, s)]);
    await until(async () => {
      const list = await t.http().get(api('/push/pushers')).set(s.recipient.auth).expect(200);
      return (list.body as unknown[]).length === 0;
    }, 'both pushers removed');
    expect(await outbox(t, s.pushKey, true)).toEqual([]);
    expect(await outbox(t, other, true)).toEqual([]);
    expect(gw.for(s.pushKey)).toHaveLength(1);
    expect(gw.for(other)).toHaveLength(1);
    await t
      .http()
      .delete(api(`/push/pushers/${otherPusher.id}`))
      .set(s.recipient.auth)
      .expect(404);
  });

  it('a recipient removed from the room before delivery gets no push', async () => {
    const s = await scene(t, gw);
    const id = await notification(t, s);
    await t
      .http()
      .delete(api(`/rooms/${s.roomId}/members/${s.recipient.id}`))
      .set(s.admin.auth)
      .expect(204);
    expect(await push.enqueue([id])).toBe(1);
    await until(async () => (await outbox(t, s.pushKey, true)).length === 0, 'the row dropped');
    await sleep(300);
    expect(gw.for(s.pushKey)).toHaveLength(0);
  });

  it('logging out removes the pushers that session registered: a later mention pushes nothing', async () => {
    const s = await scene(t, gw); // the recipient's pusher, registered with their signup session
    expect(await pushKeysOf(t, s.recipient)).toEqual([s.pushKey]);
    await t.http().post(api('/auth/logout')).set(s.recipient.auth).expect(204);
    const again = await login(t, s.recipient);
    await until(async () => (await pushKeysOf(t, again)).length === 0, 'the pusher removed');
    // A real mention in the room (notifications module, notification.created, push).
    await send(t, s.sender, s.roomId, `@${s.recipient.username} are you still there?`);
    await until(async () => (await notificationsOf(t, again)).length === 1, 'the notification');
    await sleep(500);
    expect(gw.for(s.pushKey)).toHaveLength(0);
    expect(await outbox(t, s.pushKey, true)).toEqual([]);
  });

  it("a password change removes the other sessions' pushers, not this session's", async () => {
    const s = await scene(t, gw); // this session's pusher: s.pushKey
    const thief = await login(t, s.recipient); // another session, say a stolen password
    const stolenKey = randomBytes(8).toString('hex');
    await registerPusher(t, thief, gw.url, stolenKey).expect(201);
    expect((await pushKeysOf(t, s.recipient)).sort()).toEqual([s.pushKey, stolenKey].sort());
    await t
      .http()
      .post(api('/auth/password'))
      .set(s.recipient.auth)
      .send({ currentPassword: s.recipient.password, newPassword: 'a-brand-new-password-1' })
      .expect(204);
    await until(
      async () => (await pushKeysOf(t, s.recipient)).join() === s.pushKey,
      "the other session's pusher removed",
    );
    await send(t, s.sender, s.roomId, `@${s.recipient.username} the private plan`);
    await until(() => gw.for(s.pushKey).length === 1, "this session's push");
    await sleep(300);
    expect(gw.for(stolenKey)).toHaveLength(0);
  });

  it('a session ended without its event (lost): the worker sends nothing more and drops the pusher', async () => {
    const s = await scene(t, gw);
    gw.respond = () => ({ status: 500 });
    await push.enqueue([await notification(t, s, 'meet at the usual place')]);
    await until(async () => (await outbox(t, s.pushKey))[0]?.attempts >= 1, 'a failure');
    // Revoked as the auth module does, but no `session.revoked` is emitted.
    await t.app
      .get(DataSource)
      .query(`UPDATE sessions SET revoked_at = now() WHERE user_id = $1`, [s.recipient.id]);
    await sleep(100); // an attempt already past its checks lands meanwhile
    const seen = gw.for(s.pushKey).length;
    gw.respond = () => ({ status: 200 });
    await until(async () => (await outbox(t, s.pushKey, true)).length === 0, 'the row dropped');
    await sleep(300);
    expect(gw.for(s.pushKey)).toHaveLength(seen);
    const left = await t.app
      .get(DataSource)
      .query<unknown[]>(`SELECT 1 FROM pushers WHERE push_key = $1`, [s.pushKey]);
    expect(left).toEqual([]);
  });

  it('the unread count a push carries leaves out rooms the recipient has left (as GET /notifications/unread-count)', async () => {
    const s = await scene(t, gw);
    await notification(t, s, 'in the room about to be left');
    await t
      .http()
      .post(api(`/rooms/${s.roomId}/leave`))
      .set(s.recipient.auth)
      .expect(204);
    const other = await newRoom(t, s.admin);
    await join(t, s.sender, other.id);
    await join(t, s.recipient, other.id);
    const id = await notification(t, { ...s, roomId: other.id }, 'in the room still joined');
    await push.enqueue([id]);
    const [r] = await until(() => gw.for(s.pushKey).length && gw.for(s.pushKey), 'the push');
    const count = await t.http().get(api('/notifications/unread-count')).set(s.recipient.auth);
    expect(count.body.total).toBe(1);
    expect(r.body.notification.counts).toEqual({ unread: 1 });
  });

  it('a message deleted while its push is retried: the push is dropped, its text never sent again', async () => {
    const s = await scene(t, gw);
    gw.respond = () => ({ status: 500 });
    const n = await notified(t, s, 'the text to be deleted');
    await push.enqueue([n.id]);
    await until(async () => (await outbox(t, s.pushKey))[0]?.attempts >= 1, 'a failure');
    // The outbox never held the text: it is read from the message at each delivery.
    const [waiting] = await outbox(t, s.pushKey);
    expect(waiting.payload).toMatchObject({ notification: { messageId: n.messageId } });
    expect(JSON.stringify(waiting.payload)).not.toContain('the text to be deleted');
    await t
      .http()
      .delete(api(`/messages/${n.messageId}`))
      .set(s.sender.auth)
      .expect(204);
    await sleep(100); // an attempt already past its checks lands meanwhile
    const seen = gw.for(s.pushKey).length;
    gw.respond = () => ({ status: 200 });
    await until(async () => (await outbox(t, s.pushKey, true)).length === 0, 'the row dropped');
    await sleep(300);
    expect(gw.for(s.pushKey).slice(seen)).toEqual([]);
  });

  it('a message edited while its push is retried: the push carries the edited text', async () => {
    const s = await scene(t, gw);
    gw.respond = () => ({ status: 500 });
    const n = await notified(t, s, 'the first draft');
    await push.enqueue([n.id]);
    await until(async () => (await outbox(t, s.pushKey))[0]?.attempts >= 1, 'a failure');
    await t
      .http()
      .patch(api(`/messages/${n.messageId}`))
      .set(s.sender.auth)
      .send({ content: 'the   final text' })
      .expect(200);
    await sleep(100); // an attempt already past its checks lands meanwhile
    const seen = gw.for(s.pushKey).length;
    gw.respond = () => ({ status: 200 });
    await until(async () => (await outbox(t, s.pushKey)).length === 0, 'the push delivered');
    const after = gw.for(s.pushKey).slice(seen);
    expect(after.length).toBeGreaterThanOrEqual(1);
    for (const r of after) {
      expect(r.body.notification.content).toEqual({ body: 'the final text' });
      expect(r.raw).not.toContain('first draft');
    }
  });

  it('a push key moved to another user between the claim and the POST: nothing is sent to it', async () => {
    const s = await scene(t, gw);
    const other = await newUser(t);
    const access = t.app.get(AccessPolicy);
    const readable = access.readableRooms.bind(access);
    let moved = false;
    // The worker's room check runs after the claim and before the POST: the key moves there.
    const spy = jest
      .spyOn(access, 'readableRooms')
      .mockImplementation(async (userId: string, roomIds: string[]) => {
        if (userId === s.recipient.id && !moved) {
          moved = true;
          await registerPusher(t, other, gw.url, s.pushKey).expect(201);
        }
        return readable(userId, roomIds);
      });
    try {
      const id = await notification(t, s, "the recipient's private text");
      expect(await push.enqueue([id])).toBe(1);
      await until(() => moved, 'the claim');
      await until(async () => (await outbox(t, s.pushKey, true)).length === 0, 'the row gone');
      await sleep(300);
      expect(gw.for(s.pushKey)).toEqual([]);
    } finally {
      spy.mockRestore();
    }
  });

  it('only users with no live socket are pushed', async () => {
    const s = await scene(t, gw);
    const socket: ClientSocket = await connect(t, s.recipient.accessToken);
    try {
      expect(await push.enqueue([await notification(t, s)])).toBe(0);
    } finally {
      socket.close();
    }
    await until(async () => (await push.enqueue([await notification(t, s)])) === 1, 'offline');
    await until(() => gw.for(s.pushKey).length === 1, 'the push');
  });

  it('pushers: upsert by (appId, pushKey), own only, a key moves to its latest user, a cap', async () => {
    const s = await scene(t, gw);
    const again = await registerPusher(t, s.recipient, gw.url, s.pushKey).expect(201);
    const mine = (await t.http().get(api('/push/pushers')).set(s.recipient.auth).expect(200))
      .body as { id: string; pushKey: string; lang: string; deviceName: string }[];
    expect(mine).toEqual([
      expect.objectContaining({ id: (again.body as { id: string }).id, pushKey: s.pushKey }),
    ]);
    expect(mine[0]).toMatchObject({ lang: 'fr', deviceName: 'phone' });

    // A pending push to the key stays with its user: when the key moves, it is dropped.
    gw.respond = () => ({ status: 500 });
    await push.enqueue([await notification(t, s)]);
    await until(async () => (await outbox(t, s.pushKey))[0]?.attempts === 1, 'a failure');
    const other = await newUser(t);
    await t
      .http()
      .delete(api(`/push/pushers/${mine[0].id}`))
      .set(other.auth)
      .expect(404);
    await registerPusher(t, other, gw.url, s.pushKey).expect(201);
    expect(
      (await t.http().get(api('/push/pushers')).set(s.recipient.auth).expect(200)).body,
    ).toEqual([]);
    expect(await outbox(t, s.pushKey, true)).toEqual([]);

    for (let i = 0; i < 2; i++) await registerPusher(t, other, gw.url).expect(201);
    const over = await registerPusher(t, other, gw.url).expect(409);
    expect((over.body as { code: string }).code).toBe('CONFLICT');
    await registerPusher(t, other, gw.url, s.pushKey).expect(201); // an update, not a 4th
    await t
      .http()
      .delete(api(`/push/pushers/${mine[0].id}`))
      .set(other.auth)
      .expect(404); // the moved key is a new pusher
  });

  it('two users registering one push key at once: it ends with one of them, never answered to the other', async () => {
    const listed = async (u: TestUser, key: string) =>
      (
        (await t.http().get(api('/push/pushers')).set(u.auth).expect(200)).body as {
          id: string;
          pushKey: string;
        }[]
      ).filter((p) => p.pushKey === key);
    for (let round = 0; round < 10; round++) {
      const [a, b] = [await newUser(t), await newUser(t)];
      const key = `shared-${round}-${randomBytes(4).toString('hex')}`;
      const [ra, rb] = await Promise.all([
        registerPusher(t, a, gw.url, key),
        registerPusher(t, b, gw.url, key),
      ]);
      expect([ra.status, rb.status]).toEqual([201, 201]);
      const [la, lb] = [await listed(a, key), await listed(b, key)];
      expect(la.length + lb.length).toBe(1);
      const [owner, other] = la.length ? [ra, rb] : [rb, ra];
      const final = (la[0] ?? lb[0]).id;
      expect((owner.body as { id: string }).id).toBe(final);
      expect((other.body as { id: string }).id).not.toBe(final);
    }
  });

  it('refuses pusher URLs outside the rules (scheme, host allow-list, credentials)', async () => {
    const u = await newUser(t);
    for (const url of [
      'ftp://127.0.0.1/push',
      'http://10.0.0.1/push', // not in PUSH_ALLOWED_HOSTS
      'https://push.example.com/notify', // neither
      'http://user:pw@127.0.0.1/push',
      'not a url',
    ]) {
      const res = await registerPusher(t, u, url);
      expect([url, res.status]).toEqual([url, 400]);
      expect((res.body as { details: { url: string[] } }).details.url[0]).toEqual(
        expect.any(String),
      );
    }
    await t
      .http()
      .post(api('/push/pushers'))
      .set(u.auth)
      .send({ kind: 'smtp', url: 'https://127.0.0.1/', appId: 'a', pushKey: 'k' })
      .expect(400);
  });
});

describe('push URL rules without an allow-list (public hosts only)', () => {
  let t: TestApp;
  let gw: Gateway;
  beforeAll(async () => {
    gw = await Gateway.start();
    t = await startApp({ ...PUSH_ENV, PUSH_ALLOW_HTTP: 'false', PUSH_ALLOWED_HOSTS: '' });
  });
  afterAll(async () => {
    await t?.close();
    await gw?.close();
  });

  it('refuses private, loopback, link-local and metadata addresses, and http:', async () => {
    const u = await newUser(t);
    for (const url of [
      'https://127.0.0.1/push',
      'https://localhost/push', // resolves to loopback
      'https://10.1.2.3/push',
      'https://172.16.0.1/push',
      'https://192.168.1.1/push',
      'https://169.254.169.254/latest/meta-data', // cloud metadata
      'https://100.64.0.1/push',
      'https://0.0.0.0/push',
      'https://[::1]/push',
      'https://[::ffff:127.0.0.1]/push',
      'https://[fd00:ec2::254]/push',
      'https://[fe80::1]/push',
      'http://93.184.215.14/push', // public, but http: is off
    ]) {
      const res = await registerPusher(t, u, url);
      expect([url, res.status]).toEqual([url, 400]);
    }
    // A public address is accepted.
    await registerPusher(t, u, 'https://93.184.215.14/push').expect(201);
  });

  it('re-checks at delivery: a stored URL now pointing inside is never contacted', async () => {
    const s = await scene(t);
    // As if the name had resolved to a public address at registration (DNS rebinding), or the
    // rules were tightened since: the row is written directly.
    const db = t.app.get(DataSource);
    for (const [key, url] of [
      ['rebind-name', `https://localhost:${gw.port}/push`],
      ['rebind-ip', `https://127.0.0.1:${gw.port}/push`],
    ])
      await db.query(
        `INSERT INTO pushers (user_id, kind, url, app_id, push_key) VALUES ($1, 'http', $2, 'a', $3)`,
        [s.recipient.id, url, key],
      );
    const id = await notification(t, s);
    expect(await t.app.get(PushService).enqueue([id])).toBe(2);
    const rows = await until(async () => {
      const r = await outbox(t);
      return r.length === 2 && r.every((x) => x.attempts >= 1) && r;
    }, 'both attempts failed');
    for (const r of rows) expect(r.last_error).toMatch(/non-public address/);
    expect(gw.received).toHaveLength(0);
  });
});

describe('push after PUSH_MAX_AGE_MS', () => {
  let t: TestApp;
  let gw: Gateway;
  beforeAll(async () => {
    gw = await Gateway.start();
    t = await startApp({ ...PUSH_ENV, PUSH_MAX_AGE_MS: '1500' });
  });
  afterAll(async () => {
    await t?.close();
    await gw?.close();
  });

  it('abandons what failed until then, forgets what was delivered, enqueues nothing older', async () => {
    const failing = await scene(t, gw);
    const ok = await scene(t, gw);
    gw.respond = (r) =>
      r.body.notification.devices[0].pushkey === failing.pushKey
        ? { status: 503 }
        : { status: 200 };
    const push = t.app.get(PushService);
    const late = await notification(t, ok); // enqueued only after the age limit, below
    await push.enqueue([await notification(t, failing), await notification(t, ok)]);
    await until(() => gw.for(ok.pushKey).length === 1, 'the good push');
    expect(await outbox(t, ok.pushKey, true)).toHaveLength(1); // kept, for dedupe
    await until(async () => (await outbox(t, failing.pushKey, true)).length === 0, 'abandoned');
    expect(gw.for(failing.pushKey).length).toBeGreaterThanOrEqual(2); // retried meanwhile
    await until(async () => (await outbox(t, ok.pushKey, true)).length === 0, 'swept');
    const metrics = await t.http().get('/metrics').expect(200);
    expect(metrics.text).toMatch(/parlor_push_deliveries_total\{result="abandoned"\} 1\b/);
    expect(await push.enqueue([late])).toBe(0);
  });
});

describe('push off without PUSH_HMAC_SECRET', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ADMIN_ENV, PUSH_ALLOWED_HOSTS: '127.0.0.1', PUSH_ALLOW_HTTP: 'true' });
  });
  afterAll(() => t?.close());

  it('registering a pusher is a 503, and nothing is enqueued', async () => {
    const u = await newUser(t);
    const res = await registerPusher(t, u, 'http://127.0.0.1:9/push').expect(503);
    expect((res.body as { code: string }).code).toBe('UNAVAILABLE');
    expect(await t.app.get(PushService).enqueue(['1'])).toBe(0);
  });
});

/**
 * Parlor stopped and started again on the same database: server PostgreSQL (a schema of this
 * suite), or the embedded database in a data directory, stopped and reopened with the app.
 */
describe('push across a restart', () => {
  let gw: Gateway;
  let dataDir: string;
  let serverEndpoint: PgEndpoint | undefined;
  let booted = 0;
  const apps: TestApp[] = [];
  beforeAll(async () => {
    gw = await Gateway.start();
    if (SERVER_URL) serverEndpoint = await testEndpoint();
    else dataDir = mkdtempSync(joinPath(tmpdir(), 'parlor-push-'));
  });
  afterAll(async () => {
    for (const a of apps) await a.close().catch(() => undefined);
    await gw?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });
  const boot = async () => {
    const endpoint =
      serverEndpoint ??
      (await (async (): Promise<PgEndpoint> => {
        const embedded = await EmbeddedPostgres.start({
          dataDir,
          template: booted ? undefined : new Blob([readFileSync(templatePath())]),
          maxConnections: 20,
        });
        return { url: embedded.url, embedded };
      })());
    booted++;
    const a = await startApp(PUSH_ENV, endpoint);
    apps.push(a);
    return a;
  };

  it('pushes pending when Parlor stops are delivered by the next run', async () => {
    const a = await boot();
    const s = await scene(a, gw);
    gw.respond = () => 'hang'; // the gateway is stuck: a delivery is in flight at shutdown
    const ids = [await notification(a, s, 'one'), await notification(a, s, 'two')];
    expect(await a.app.get(PushService).enqueue(ids)).toBe(2);
    await until(() => gw.for(s.pushKey).length >= 1, 'a delivery in flight');
    await a.close();
    gw.respond = () => ({ status: 200 });
    const seen = gw.for(s.pushKey).length;

    const b = await boot();
    const delivered = await until(
      () =>
        gw.for(s.pushKey).length >= seen + 2 &&
        gw
          .for(s.pushKey)
          .slice(seen)
          .map((r) => r.body.notification.content?.body),
      'both pushes after the restart',
    );
    expect(delivered.sort()).toEqual(['one', 'two']);
    await until(async () => (await outbox(b, s.pushKey)).length === 0, 'the rows delivered');
  });
});

const SHARED = Boolean(process.env.TEST_REDIS_URL && SERVER_URL);
(SHARED ? describe : describe.skip)('push with two instances sharing Redis and PostgreSQL', () => {
  let a: TestApp;
  let b: TestApp;
  let gw: Gateway;
  beforeAll(async () => {
    gw = await Gateway.start();
    const endpoint = await testEndpoint();
    a = await startApp(PUSH_ENV, endpoint);
    b = await startApp(PUSH_ENV, endpoint);
    await sleep(500); // both heartbeats are in Redis
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await gw?.close();
  });

  it('a socket on instance B means instance A enqueues nothing; once it is gone, A pushes', async () => {
    const s = await scene(a, gw);
    const socket = await connect(b, s.recipient.accessToken);
    try {
      expect(await a.app.get(PushService).enqueue([await notification(a, s)])).toBe(0);
    } finally {
      socket.close();
    }
    await until(
      async () => (await a.app.get(PushService).enqueue([await notification(a, s)])) === 1,
      'the recipient offline everywhere',
    );
    const [r] = await until(() => gw.for(s.pushKey).length && gw.for(s.pushKey), 'the push');
    expect(r.verified).toBe(true);
  });

  it('real notifications: a socket on B, a direct message written through A: no push', async () => {
    const d = await directScene(a, gw);
    const socket = await connect(b, d.recipient.accessToken);
    try {
      await send(a, d.sender, d.roomId, 'ping');
      await until(async () => (await notificationsOf(a, d.recipient)).length === 1, 'stored');
      await sleep(500);
      expect(gw.for(d.pushKey)).toHaveLength(0);
    } finally {
      socket.close();
    }
  });

  it('several instances deliver each push once (SKIP LOCKED claims)', async () => {
    const s = await scene(a, gw);
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await notification(a, s, `m${i}`));
    await Promise.all([
      a.app.get(PushService).enqueue(ids.slice(0, 10)),
      b.app.get(PushService).enqueue(ids),
    ]);
    await until(() => gw.for(s.pushKey).length >= 20, 'twenty pushes');
    await sleep(500);
    const got = gw.for(s.pushKey).map((r) => r.body.notification.id);
    expect(got).toHaveLength(20);
    expect(new Set(got).size).toBe(20);
  });
});
