import { createHash } from 'node:crypto';
import type { Server as HttpServer } from 'node:http';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigService } from '@nestjs/config';
import sharp from 'sharp';
import { DataSource } from 'typeorm';
import { ATTACHMENT_STORAGE, AttachmentsService } from '../src/attachments/attachments.service';
import type { AttachmentStorage } from '../src/attachments/storage';
import type { AttachmentDto, MessageDto } from '../src/common/wire';
import { startApp, type TestApp } from './support/app';
import { testEndpoint } from './support/database';
import {
  ADMIN_ENV,
  join as joinRoom,
  loginAdmin,
  newRoom,
  newUser,
  NO_WRITE_LIMITS,
  type TestUser,
} from './support/factories';
import { openUpload, startS3, type LocalS3 } from './support/s3';
import { connect, next, ok, sleep } from './support/socket';

const KB = 1024;
const LIMITS = {
  ATTACHMENT_MAX_BYTES: String(512 * KB),
  ATTACHMENT_USER_QUOTA_BYTES: String(1200 * KB),
  ATTACHMENTS_PER_MESSAGE: '3',
  ATTACHMENT_SWEEP_MS: '3600000', // the tests run the cleanup job themselves
  RATE_LIMIT_UPLOAD: '100000',
};

async function png(width: number, height: number): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: 200, g: 40, b: 90 } } })
    .png()
    .toBuffer();
}

/** Bytes that are not a recognisable image: a file-type signature nothing matches. */
function noise(size: number, seed = 7): Buffer {
  const b = Buffer.alloc(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    b[i] = 0x20 + (x % 90);
  }
  return b;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Fetched {
  status: number;
  headers: Headers;
  body: Buffer;
  /** S3: the presigned URL the API redirected to. */
  redirectedTo?: string;
}

describe.each(['local', 's3'] as const)('attachments on %s storage', (driver) => {
  let t: TestApp;
  let s3: LocalS3 | undefined;
  let dir: string | undefined;
  let admin: TestUser;
  let alice: TestUser;
  let bob: TestUser;
  let roomId: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    if (driver === 's3') s3 = await startS3();
    else dir = mkdtempSync(join(tmpdir(), 'parlor-att-'));
    env = {
      ...ADMIN_ENV,
      ...NO_WRITE_LIMITS,
      ...LIMITS,
      ...(s3 ? s3.env : { ATTACHMENTS_DIR: dir! }),
    };
    t = await startApp(env);
    admin = await loginAdmin(t);
    alice = await newUser(t);
    bob = await newUser(t);
    roomId = (await newRoom(t, admin, { visibility: 'private' })).id;
    for (const u of [alice, bob]) await addMember(t, admin, roomId, u);
  });
  afterAll(async () => {
    await t?.close();
    await s3?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const db = () => t.app.get(DataSource);

  async function addMember(app: TestApp, by: TestUser, room: string, u: TestUser) {
    await app
      .http()
      .post(`/api/v1/rooms/${room}/members`)
      .set(by.auth)
      .send({ userId: u.id })
      .expect(201);
  }

  function upload(user: TestUser, buf: Buffer, name: string, room = roomId, app = t) {
    return app
      .http()
      .post(`/api/v1/rooms/${room}/attachments`)
      .set(user.auth)
      .attach('file', buf, { filename: name, contentType: 'image/png' });
  }

  async function uploaded(user: TestUser, buf: Buffer, name: string, room = roomId, app = t) {
    const res = await upload(user, buf, name, room, app);
    expect(res.status).toBe(201);
    return res.body as AttachmentDto;
  }

  function sendWith(user: TestUser, ids: string[], content = '', room = roomId, app = t) {
    return app
      .http()
      .post(`/api/v1/rooms/${room}/messages`)
      .set(user.auth)
      .send({ clientMsgId: `c-${Math.random()}`, content, attachmentIds: ids });
  }

  /** GET through the API; an S3 redirect is followed (with the same Range), as a browser does. */
  async function fetchFile(
    user: TestUser,
    path: string,
    headers: Record<string, string> = {},
    app = t,
  ): Promise<Fetched> {
    const res = await app
      .http()
      .get(path)
      .set(user.auth)
      .set(headers)
      .buffer(true)
      .parse((r, cb) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => cb(null, Buffer.concat(chunks)));
      });
    if (res.status === 302) {
      const location = res.headers.location;
      const followed = await fetch(location, { headers });
      return {
        status: followed.status,
        headers: followed.headers,
        body: Buffer.from(await followed.arrayBuffer()),
        redirectedTo: location,
      };
    }
    const h = new Headers();
    for (const [k, v] of Object.entries(res.headers)) h.set(k, String(v));
    return { status: res.status, headers: h, body: res.body as Buffer };
  }

  async function objectExists(key: string): Promise<boolean> {
    if (s3) return s3.exists(key);
    return existsSync(join(dir!, key));
  }

  async function row(id: string) {
    const [r] = await db().query<Record<string, unknown>[]>(
      `SELECT * FROM attachments WHERE id = $1`,
      [id],
    );
    return r;
  }

  const sweep = () => t.app.get(AttachmentsService).sweep();

  it('uploads an image: sniffed type, size, digest, dimensions and a thumbnail', async () => {
    const bytes = await png(640, 400);
    const a = await uploaded(alice, bytes, 'holiday.png');
    expect(a).toEqual({
      id: expect.any(String),
      name: 'holiday.png',
      size: bytes.length,
      contentType: 'image/png',
      width: 640,
      height: 400,
      thumbnail: `/api/v1/attachments/${a.id}/thumbnail`,
    });
    const r = await row(a.id);
    expect(r).toMatchObject({ state: 'ready', sha256: sha256(bytes), message_id: null });
    expect(await objectExists(`a/${a.id}`)).toBe(true);
    expect(await objectExists(`a/${a.id}.thumb`)).toBe(true);

    // The uploader may fetch it before sending; others may not (404).
    const own = await fetchFile(alice, `/api/v1/attachments/${a.id}`);
    expect(own.status).toBe(200);
    expect(own.body.equals(bytes)).toBe(true);
    expect((await fetchFile(bob, `/api/v1/attachments/${a.id}`)).status).toBe(404);

    const thumb = await fetchFile(alice, `/api/v1/attachments/${a.id}/thumbnail`);
    expect(thumb.status).toBe(200);
    expect(thumb.headers.get('content-type')).toBe('image/webp');
    const meta = await sharp(thumb.body).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['webp', 320, 200]);
  });

  it('a message carries its attachments (REST), in history and for other members', async () => {
    const bytes = await png(30, 20);
    const a = await uploaded(alice, bytes, 'a.png');
    const b = await uploaded(alice, noise(3000), 'notes.txt');
    const res = await sendWith(alice, [b.id, a.id], 'two files');
    expect(res.status).toBe(201);
    const m = res.body as MessageDto;
    expect(m.attachments).toEqual([b, a]);
    const history = await t
      .http()
      .get(`/api/v1/rooms/${roomId}/messages`)
      .set(bob.auth)
      .expect(200);
    const seen = (history.body as { items: MessageDto[] }).items.find((x) => x.id === m.id)!;
    expect(seen.attachments).toEqual([b, a]);
    const got = await fetchFile(bob, `/api/v1/attachments/${a.id}`);
    expect(got.status).toBe(200);
    expect(got.body.equals(bytes)).toBe(true);
    expect(got.headers.get('content-disposition')).toMatch(/^inline; filename="a.png"/);
    expect((await row(a.id)).expires_at).toBeNull();
  });

  it('attachment-only messages are valid; an empty message without attachments is not', async () => {
    const a = await uploaded(alice, await png(8, 8), 'dot.png');
    const res = await sendWith(alice, [a.id], '');
    expect(res.status).toBe(201);
    expect((res.body as MessageDto).content).toBe('');
    const empty = await sendWith(alice, [], '');
    expect(empty.status).toBe(400);
  });

  it('message.send over the socket takes attachmentIds; the broadcast carries them', async () => {
    const a = await uploaded(alice, await png(12, 10), 'socket.png');
    const sa = await connect(t, alice.accessToken);
    const sb = await connect(t, bob.accessToken);
    try {
      await ok(sa, 'room.join', { roomId });
      await ok(sb, 'room.join', { roomId });
      const seen = next(sb, 'message.created', (m) => m.attachments.length > 0);
      const sent = await ok(sa, 'message.send', {
        roomId,
        clientMsgId: `s-${Math.random()}`,
        content: '',
        attachmentIds: [a.id],
      });
      expect(sent.attachments).toEqual([a]);
      expect((await seen).attachments).toEqual([a]);
    } finally {
      sa.close();
      sb.close();
    }
  });

  it('sniffs the bytes: HTML named .png is an octet-stream download, never inline', async () => {
    const html = Buffer.from('<html><body><script>alert(document.cookie)</script></body></html>');
    const a = await uploaded(alice, html, 'cat.png');
    expect(a.contentType).toBe('application/octet-stream');
    expect(a.thumbnail).toBeNull();
    const svg = Buffer.from(
      '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    );
    const s = await uploaded(alice, svg, 'logo.svg');
    expect(s.contentType).toBe('application/octet-stream');
    await sendWith(alice, [a.id, s.id], 'look').expect(201);
    for (const f of [a, s]) {
      const got = await fetchFile(bob, `/api/v1/attachments/${f.id}`);
      expect(got.status).toBe(200);
      expect(got.headers.get('content-type')).toBe('application/octet-stream');
      expect(got.headers.get('content-disposition')).toMatch(/^attachment; filename=/);
      if (driver === 'local') {
        expect(got.headers.get('x-content-type-options')).toBe('nosniff');
        expect(got.headers.get('content-security-policy')).toContain('sandbox');
      } else {
        expect(got.redirectedTo).toContain('X-Amz-Signature');
      }
    }
  });

  it('refuses types not allowed, and images that do not decode', async () => {
    const exe = Buffer.concat([Buffer.from('MZ'), Buffer.alloc(300, 0)]);
    exe.write('PE\0\0', 0x80);
    exe.writeUInt32LE(0x80, 0x3c);
    const res = await upload(alice, exe, 'tool.png');
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toMatch(/not allowed/);
    const broken = Buffer.concat([(await png(50, 50)).subarray(0, 60), Buffer.alloc(100)]);
    const bad = await upload(alice, broken, 'broken.png');
    expect(bad.status).toBe(400);
    const left = await db().query(
      `SELECT id FROM attachments WHERE uploader_id = $1 AND state = 'pending'`,
      [alice.id],
    );
    expect(left).toEqual([]);
  });

  it('limits: file size and count per message, with clear errors', async () => {
    const big = await upload(alice, noise(512 * KB + 1), 'big.bin');
    expect(big.status).toBe(413);
    expect(big.body).toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    expect((big.body as { message: string }).message).toMatch(/ATTACHMENT_MAX_BYTES/);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await uploaded(alice, noise(100, i), `f${i}.txt`)).id);
    const four = await sendWith(alice, ids, 'too many');
    expect(four.status).toBe(400);
    expect(JSON.stringify(four.body)).toMatch(/at most 3 attachments/);
    // Nothing was claimed by the refused send.
    await sendWith(alice, ids.slice(0, 3), 'three').expect(201);
  });

  it('per-user quota: uploads beyond it are refused, deleting frees room', async () => {
    const carol = await newUser(t);
    await addMember(t, admin, roomId, carol);
    const first = await uploaded(carol, noise(500 * KB, 1), 'one.bin');
    await uploaded(carol, noise(500 * KB, 2), 'two.bin');
    const third = await upload(carol, noise(500 * KB, 3), 'three.bin');
    expect(third.status).toBe(413);
    expect((third.body as { message: string }).message).toMatch(/quota/i);
    // A message with the first, deleted: its bytes no longer count.
    const m = (await sendWith(carol, [first.id], 'x').expect(201)).body as MessageDto;
    await t.http().delete(`/api/v1/messages/${m.id}`).set(carol.auth).expect(204);
    await sweep();
    await uploaded(carol, noise(500 * KB, 3), 'three.bin');
  });

  it('claims atomically: of two sends naming one upload exactly one wins; others’ ids are refused', async () => {
    const a = await uploaded(alice, noise(200), 'race.txt');
    const results = await Promise.all([
      sendWith(alice, [a.id], 'one'),
      sendWith(alice, [a.id], 'two'),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual([201, 400]);
    const [{ n }] = await db().query<{ n: number }[]>(
      `SELECT count(*)::int AS n FROM messages WHERE attachments @> $1::jsonb`,
      [JSON.stringify([{ id: a.id }])],
    );
    expect(n).toBe(1);
    // Someone else's upload, or one made for another room, cannot be sent.
    const b = await uploaded(bob, noise(200), 'bob.txt');
    expect((await sendWith(alice, [b.id], 'steal')).status).toBe(400);
    const other = (await newRoom(t, admin, { visibility: 'public' })).id;
    await joinRoom(t, alice, other);
    const c = await uploaded(alice, noise(200), 'c.txt');
    expect((await sendWith(alice, [c.id], 'elsewhere', other)).status).toBe(400);
    await sendWith(alice, [c.id], 'here').expect(201);
  });

  it('members who may not write cannot upload; non-members get 404', async () => {
    const stranger = await newUser(t);
    expect((await upload(stranger, noise(10), 'x.txt')).status).toBe(404);
    const pub = (await newRoom(t, admin, { visibility: 'public' })).id;
    expect((await upload(stranger, noise(10), 'x.txt', pub)).status).toBe(403);
  });

  it('a member removed from the room gets 404 for its files', async () => {
    const dave = await newUser(t);
    await addMember(t, admin, roomId, dave);
    const a = await uploaded(alice, noise(500), 'secret.txt');
    await sendWith(alice, [a.id], 'for members').expect(201);
    expect((await fetchFile(dave, `/api/v1/attachments/${a.id}`)).status).toBe(200);
    await t.http().delete(`/api/v1/rooms/${roomId}/members/${dave.id}`).set(admin.auth).expect(204);
    expect((await fetchFile(dave, `/api/v1/attachments/${a.id}`)).status).toBe(404);
    expect((await fetchFile(dave, `/api/v1/attachments/${a.id}/thumbnail`)).status).toBe(404);
  });

  it('serves byte ranges', async () => {
    const bytes = noise(10 * KB, 11);
    const a = await uploaded(alice, bytes, 'range.bin');
    await sendWith(alice, [a.id], 'ranges').expect(201);
    const part = await fetchFile(bob, `/api/v1/attachments/${a.id}`, { Range: 'bytes=100-199' });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 100-199/${bytes.length}`);
    expect(part.body.equals(bytes.subarray(100, 200))).toBe(true);
    const beyond = await fetchFile(bob, `/api/v1/attachments/${a.id}`, {
      Range: `bytes=${bytes.length + 10}-`,
    });
    expect(beyond.status).toBe(416);
  });

  it('deleting a message deletes its files', async () => {
    const a = await uploaded(alice, await png(40, 40), 'gone.png');
    const m = (await sendWith(alice, [a.id], 'bye').expect(201)).body as MessageDto;
    await t.http().delete(`/api/v1/messages/${m.id}`).set(alice.auth).expect(204);
    expect((await fetchFile(bob, `/api/v1/attachments/${a.id}`)).status).toBe(404);
    await sweep(); // also woken by message.deleted; run to completion here
    expect(await row(a.id)).toBeUndefined();
    expect(await objectExists(`a/${a.id}`)).toBe(false);
    expect(await objectExists(`a/${a.id}.thumb`)).toBe(false);
    const tomb = await t.http().get(`/api/v1/rooms/${roomId}/messages`).set(bob.auth).expect(200);
    const seen = (tomb.body as { items: MessageDto[] }).items.find((x) => x.id === m.id)!;
    expect(seen.attachments).toEqual([]);
  });

  it('unsent uploads expire; the cleanup job removes row and bytes', async () => {
    const a = await uploaded(alice, noise(300), 'late.txt');
    await db().query(
      `UPDATE attachments SET expires_at = now() - interval '1 second' WHERE id = $1`,
      [a.id],
    );
    expect((await sendWith(alice, [a.id], 'too late')).status).toBe(400);
    await sweep();
    expect(await row(a.id)).toBeUndefined();
    expect(await objectExists(`a/${a.id}`)).toBe(false);
  });

  it('a client that aborts mid-upload leaves no row and no bytes', async () => {
    const before = await db().query(`SELECT count(*)::int AS n FROM attachments`);
    const req = openUpload(`${t.url}/api/v1/rooms/${roomId}/attachments`, alice.auth, 400 * KB);
    req.write(noise(100 * KB));
    // The row is written before the bytes: wait until it exists, then cut the connection.
    for (let i = 0; i < 100; i++) {
      const [{ n }] = await db().query<{ n: number }[]>(
        `SELECT count(*)::int AS n FROM attachments WHERE state = 'pending' AND uploader_id = $1`,
        [alice.id],
      );
      if (n > 0) break;
      await sleep(20);
    }
    req.destroy();
    for (let i = 0; i < 100; i++) {
      const [{ n }] = await db().query<{ n: number }[]>(
        `SELECT count(*)::int AS n FROM attachments WHERE state = 'pending'`,
      );
      if (n === 0) break;
      await sleep(50);
    }
    expect(await db().query(`SELECT count(*)::int AS n FROM attachments`)).toEqual(before);
    if (dir) {
      const leftovers = readdirSync(join(dir, 'a')).filter((f) => f.endsWith('.part'));
      expect(leftovers).toEqual([]);
    }
  });

  it('an upload whose room is deleted while the file arrives answers 404 and keeps nothing', async () => {
    const room = (await newRoom(t, admin)).id;
    await addMember(t, admin, room, alice);
    const size = 300 * KB;
    const head =
      `--parlorTestBoundary\r\nContent-Disposition: form-data; name="file"; filename="cut.bin"\r\n` +
      `Content-Type: application/octet-stream\r\n\r\n`;
    const tail = `\r\n--parlorTestBoundary--\r\n`;
    const req = openUpload(
      `${t.url}/api/v1/rooms/${room}/attachments`,
      alice.auth,
      Buffer.byteLength(head) + size + Buffer.byteLength(tail),
    );
    const answer = new Promise<{ status: number; body: { code?: string } }>((resolve, reject) => {
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString()) }),
        );
        res.on('error', reject);
      });
    });
    const bytes = noise(size, 11);
    req.write(bytes.subarray(0, 100 * KB));
    // The pending row is written before the bytes: once it exists, the room goes.
    let id: string | undefined;
    for (let i = 0; i < 200 && !id; i++) {
      const rows = await db().query<{ id: string }[]>(
        `SELECT id FROM attachments WHERE state = 'pending' AND room_id = $1`,
        [room],
      );
      id = rows[0]?.id;
      if (!id) await sleep(20);
    }
    expect(id).toBeDefined();
    await t.http().delete(`/api/v1/rooms/${room}`).set(admin.auth).expect(204);
    req.end(Buffer.concat([bytes.subarray(100 * KB), Buffer.from(tail)]));
    const res = await answer;
    expect(res.status).toBe(404);
    expect(res.body.code).toBe('NOT_FOUND');
    // Nothing was made ready in no room; the upload's row and bytes are gone.
    expect(await row(id!)).toBeUndefined();
    expect(await objectExists(`a/${id}`)).toBe(false);
  });

  it('the HTTP server receives an upload for as long as ATTACHMENT_UPLOAD_TIMEOUT_MS allows', () => {
    // Node's default requestTimeout (300 s) would cut an upload the 600 s default allows.
    const server = t.app.getHttpServer() as HttpServer;
    const timeout = t.app.get(ConfigService).get<number>('ATTACHMENT_UPLOAD_TIMEOUT_MS');
    expect(timeout).toBe(600_000);
    expect(server.requestTimeout).toBeGreaterThan(timeout!);
  });

  it('metrics count uploads and bytes stored', async () => {
    const res = await t.http().get('/metrics').expect(200);
    expect(res.text).toMatch(/parlor_attachment_uploads_total\{result="stored"\} [1-9]/);
    expect(res.text).toMatch(/parlor_attachments_stored_bytes [1-9]/);
  });

  if (driver === 's3') {
    it('direct upload: create, PUT to the presigned URL, complete (size and type checked)', async () => {
      const bytes = await png(64, 48);
      const created = await t
        .http()
        .post(`/api/v1/rooms/${roomId}/attachments/uploads`)
        .set(alice.auth)
        .send({ name: 'direct.png', size: bytes.length })
        .expect(201);
      const up = created.body as { id: string; uploadUrl: string; headers: Record<string, string> };
      // Completing before the PUT: 409, the upload stays.
      await t.http().post(`/api/v1/attachments/${up.id}/complete`).set(alice.auth).expect(409);
      const put = await fetch(up.uploadUrl, { method: 'PUT', body: bytes, headers: up.headers });
      expect(put.status).toBe(200);
      // Only its uploader completes it.
      await t.http().post(`/api/v1/attachments/${up.id}/complete`).set(bob.auth).expect(404);
      const done = await t
        .http()
        .post(`/api/v1/attachments/${up.id}/complete`)
        .set(alice.auth)
        .expect(200);
      expect(done.body).toMatchObject({
        id: up.id,
        contentType: 'image/png',
        width: 64,
        height: 48,
      });
      expect((await row(up.id)).sha256).toBe(sha256(bytes));
      await sendWith(alice, [up.id], 'direct').expect(201);

      // Declared too large: refused before any URL is given.
      await t
        .http()
        .post(`/api/v1/rooms/${roomId}/attachments/uploads`)
        .set(alice.auth)
        .send({ name: 'huge.bin', size: 512 * KB + 1 })
        .expect(413);
      // A file whose bytes are not what was declared (or not allowed) is refused at completion.
      const liar = (
        await t
          .http()
          .post(`/api/v1/rooms/${roomId}/attachments/uploads`)
          .set(alice.auth)
          .send({ name: 'liar.png', size: 100 })
          .expect(201)
      ).body as { id: string; uploadUrl: string };
      const exe = Buffer.concat([Buffer.from('MZ'), Buffer.alloc(298, 0)]);
      exe.writeUInt32LE(0x80, 0x3c);
      exe.write('PE\0\0', 0x80);
      await fetch(liar.uploadUrl, { method: 'PUT', body: exe.subarray(0, 100) });
      const refused = await t
        .http()
        .post(`/api/v1/attachments/${liar.id}/complete`)
        .set(alice.auth);
      expect(refused.status).toBe(400);
      expect(await row(liar.id)).toBeUndefined();
      expect(await objectExists(`a/${liar.id}`)).toBe(false);
    });

    /** A direct upload created and PUT (not completed). */
    const directPut = async (bytes: Buffer, name = 'direct.png') => {
      const up = (
        await t
          .http()
          .post(`/api/v1/rooms/${roomId}/attachments/uploads`)
          .set(alice.auth)
          .send({ name, size: bytes.length })
          .expect(201)
      ).body as { id: string; uploadUrl: string; headers: Record<string, string> };
      const put = (body: Buffer) =>
        fetch(up.uploadUrl, { method: 'PUT', body, headers: up.headers }).then((r) => r.status);
      expect(await put(bytes)).toBe(200);
      return { ...up, put };
    };
    const complete = (id: string) =>
      t.http().post(`/api/v1/attachments/${id}/complete`).set(alice.auth);

    it('direct upload: what the URL writes after completion changes nothing (no swap, no orphan)', async () => {
      const bytes = await png(40, 30);
      const up = await directPut(bytes);
      await complete(up.id).expect(200);
      // The URL is still valid: the same length of other bytes is accepted by the bucket...
      const other = Buffer.alloc(bytes.length, '<');
      expect(await up.put(other)).toBe(200);
      // ...but the attachment is the checked copy.
      const served = await fetchFile(alice, `/api/v1/attachments/${up.id}`);
      expect(served.status).toBe(200);
      expect(sha256(served.body)).toBe(sha256(bytes));
      expect((await row(up.id)).sha256).toBe(sha256(bytes));
      // A refused upload's URL can still write its staging key: the cleanup job's scan of
      // stale uploads deletes such objects, which no row knows of.
      const exe = Buffer.concat([Buffer.from('MZ'), Buffer.alloc(118, 0)]); // not allowed
      const liar = await directPut(exe, 'liar.png');
      await complete(liar.id).expect(400);
      expect(await row(liar.id)).toBeUndefined();
      expect(await liar.put(Buffer.alloc(120, 'y'))).toBe(200);
      expect(await objectExists(`u/${liar.id}`)).toBe(true);
      expect(await objectExists(`a/${liar.id}`)).toBe(false);
      const storage = t.app.get<AttachmentStorage>(ATTACHMENT_STORAGE);
      await storage.abortStaleUploads!(new Date(Date.now() + 60_000));
      expect(await objectExists(`u/${liar.id}`)).toBe(false);
      expect(await objectExists(`u/${up.id}`)).toBe(false);
      expect(await objectExists(`a/${up.id}`)).toBe(true); // only staging objects go
    });

    it('direct upload: concurrent completions finish it once; none discards it', async () => {
      for (let round = 0; round < 3; round++) {
        const bytes = await png(32 + round, 32);
        const up = await directPut(bytes);
        const answers = await Promise.all([complete(up.id), complete(up.id), complete(up.id)]);
        const statuses = answers.map((a) => a.status);
        // One finishes it; the others answer it (200) or say it is being completed (409).
        expect(statuses).toContain(200);
        expect(statuses.every((s) => s === 200 || s === 409)).toBe(true);
        expect((await row(up.id)).state).toBe('ready');
        await complete(up.id).expect(200);
        await sendWith(alice, [up.id], `concurrent ${round}`).expect(201);
        const served = await fetchFile(alice, `/api/v1/attachments/${up.id}`);
        expect(sha256(served.body)).toBe(sha256(bytes));
      }
    });
  } else {
    it('direct upload is for S3 storage only (409 with the way to upload)', async () => {
      const res = await t
        .http()
        .post(`/api/v1/rooms/${roomId}/attachments/uploads`)
        .set(alice.auth)
        .send({ name: 'x.png', size: 10 });
      expect(res.status).toBe(409);
    });
  }

  it('two instances share the storage: upload on one, download and clean up on the other', async () => {
    // A second instance on the same database and the same storage.
    const endpoint = await testEndpoint();
    const shared = { ...env };
    const a1 = await startApp(shared, endpoint);
    const a2 = await startApp(shared, endpoint);
    try {
      const adm = await loginAdmin(a1);
      const u1 = await newUser(a1);
      const u2 = await newUser(a1);
      const room = (await newRoom(a1, adm, { visibility: 'private' })).id;
      await addMember(a1, adm, room, u1);
      await addMember(a1, adm, room, u2);
      const bytes = await png(100, 60);
      const a = await uploaded(u1, bytes, 'shared.png', room, a1);
      const m = (await sendWith(u1, [a.id], 'shared', room, a2).expect(201)).body as MessageDto;
      const got = await fetchFile(u2, `/api/v1/attachments/${a.id}`, {}, a2);
      expect(got.body.equals(bytes)).toBe(true);
      await a2.http().delete(`/api/v1/messages/${m.id}`).set(u1.auth).expect(204);
      // Both instances sweep at once: each row is taken by one of them.
      const removed = await Promise.all([
        a1.app.get(AttachmentsService).sweep(),
        a2.app.get(AttachmentsService).sweep(),
      ]);
      expect(removed.reduce((x, y) => x + y, 0)).toBe(1);
      expect(await objectExists(`a/${a.id}`)).toBe(false);
    } finally {
      await a2.close();
      await a1.close();
    }
  });
});
