import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import { DataSource } from 'typeorm';
import { PG_ENDPOINT, type PgEndpoint } from '../src/database/database.module';
import { startApp, type TestApp } from './support/app';
import {
  ADMIN_ENV,
  join,
  loginAdmin,
  newRoom,
  newUser,
  NO_WRITE_LIMITS,
  type TestRoom,
  type TestUser,
} from './support/factories';
import { call, type ClientSocket, connect } from './support/socket';

/**
 * The send batch runs as named (prepared) statements. On embedded PGlite every connection
 * shares one PostgreSQL session: a named statement outlives the connection that prepared it,
 * so a connection the pool opened later (after an error or an idle timeout, or a second app on
 * the same database) used to answer every send with "prepared statement already exists". A
 * send the database refuses (a NUL in the text) must stay that send's 400, and every send after
 * it must work, on both databases.
 */
describe('send statements prepared (named)', () => {
  const env = { ...ADMIN_ENV, ...NO_WRITE_LIMITS };
  let t: TestApp;
  let db: DataSource;
  let user: TestUser;
  let room: TestRoom;
  let s: ClientSocket;
  const messages = () => `/api/v1/rooms/${room.id}/messages`;
  const rest = (app: TestApp, content: string, extra: Record<string, unknown> = {}) =>
    app
      .http()
      .post(messages())
      .set(user.auth)
      .send({ clientMsgId: randomUUID(), content, ...extra });
  const sock = (content: string, extra: Record<string, unknown> = {}) =>
    call(s, 'message.send', { roomId: room.id, clientMsgId: randomUUID(), content, ...extra });
  const stored = async () =>
    (
      await db.query<{ content: string }[]>(
        `SELECT content FROM messages WHERE room_id = $1 AND role = 'user' ORDER BY id`,
        [room.id],
      )
    ).map((r) => r.content);

  beforeAll(async () => {
    t = await startApp(env);
    db = t.app.get(DataSource);
    const admin = await loginAdmin(t);
    user = await newUser(t);
    room = await newRoom(t, admin);
    await join(t, user, room.id);
    s = await connect(t, user.accessToken);
  });
  afterAll(async () => {
    s.close();
    await t.close();
  });

  /** The send statements prepared on the pool's connections, and their generic-plan runs. */
  async function preparedStatements(): Promise<Map<string, number>> {
    // pg_prepared_statements lists the current session's: ask on every connection of the
    // pool, all of them held at once.
    const pool = (db.driver as unknown as { master: Pool }).master;
    const clients = await Promise.all(
      Array.from({ length: pool.options.max }, () => pool.connect()),
    );
    const out = new Map<string, number>();
    for (const c of clients) {
      const { rows } = await c.query<{ name: string; generic_plans: string }>(
        `SELECT name, generic_plans FROM pg_prepared_statements WHERE name LIKE 'parlor_send%'`,
      );
      for (const r of rows) {
        const name = r.name.replace(/_[0-9a-f]{12}$/, '');
        out.set(name, (out.get(name) ?? 0) + Number(r.generic_plans));
      }
      c.release();
    }
    return out;
  }

  it('a first execution the database refuses (NUL) is a 400, and the sends after it succeed', async () => {
    // The very first send of this database is the refused one: Parse succeeds, Bind fails.
    const refused = await rest(t, 'a\u0000b');
    expect(refused.status).toBe(400);
    expect(refused.body.code).toBe('VALIDATION_FAILED');
    expect((await rest(t, 'rest after')).status).toBe(201);
    expect(await sock('\u0000')).toMatchObject({ ok: false, error: { code: 'VALIDATION_FAILED' } });
    expect(await sock('socket after')).toMatchObject({ ok: true });
    // One-row batches one after another are planned once, not at every execution: after the
    // first five on a connection, PostgreSQL runs the cached generic plan. (pg-pool hands out the
    // last connection released, but the app's background queries take one now and then, so the
    // sends may spread over a few connections: 30 leave at least 5 generic runs even over three.)
    // (Tables this small get it even without PLAN_ONCE in message-store.ts; `npm run bench --
    // sendcost` shows its effect on 100k memberships.)
    for (let i = 0; i < 30; i++) expect((await rest(t, `one by one ${i}`)).status).toBe(201);
    expect((await preparedStatements()).get('parlor_send_plain')).toBeGreaterThanOrEqual(5);
    // A reply takes the other statement (SEND_BATCH): refused, then accepted.
    const [{ id: parent }] = await db.query<{ id: string }[]>(
      `SELECT id FROM messages WHERE room_id = $1 AND content = 'rest after'`,
      [room.id],
    );
    expect((await rest(t, 're\u0000ply', { replyToId: Number(parent) })).status).toBe(400);
    expect((await rest(t, 'reply after', { replyToId: Number(parent) })).status).toBe(201);
    expect([...(await preparedStatements()).keys()].sort()).toEqual([
      'parlor_send_batch',
      'parlor_send_plain',
    ]);
    // One refused send among concurrent ones (one batch): only that one fails.
    const acks = await Promise.all(
      Array.from({ length: 8 }, (_, i) => sock(i === 3 ? `bad \u0000 ${i}` : `batch ${i}`)),
    );
    expect(acks.map((a) => a.ok)).toEqual([true, true, true, false, true, true, true, true]);
    expect(acks[3]).toMatchObject({ ok: false, error: { code: 'VALIDATION_FAILED' } });
    // (A refused batch is written again row by row, concurrently: not in arrival order.)
    const rows = await stored();
    expect(rows.slice(0, 33)).toEqual([
      'rest after',
      'socket after',
      ...Array.from({ length: 30 }, (_, i) => `one by one ${i}`),
      'reply after',
    ]);
    expect(rows.slice(33).sort()).toEqual([0, 1, 2, 4, 5, 6, 7].map((i) => `batch ${i}`));
  });

  it('a connection the pool opened since (after an error, an idle timeout) still sends', async () => {
    expect((await rest(t, 'before the new connection')).status).toBe(201);
    // Throw the pool's connections away, as pg-pool does after a connection error or idle.
    const pool = (db.driver as unknown as { master: Pool }).master;
    const held = await Promise.all(Array.from({ length: pool.options.max }, () => pool.connect()));
    for (const c of held) c.release(new Error('dropped by the test'));
    expect(pool.totalCount).toBe(0);
    expect((await rest(t, 'on the new connection')).status).toBe(201);
    expect(await sock('socket on the new connection')).toMatchObject({ ok: true });
    expect((await rest(t, 'x\u0000')).status).toBe(400);
    expect((await rest(t, 'after a refusal on the new connection')).status).toBe(201);
  });

  it('two apps on one database both send, and a clientMsgId retried through both is one row', async () => {
    const other = await startApp(env, t.app.get<PgEndpoint>(PG_ENDPOINT));
    try {
      expect((await rest(other, 'from the second app')).status).toBe(201);
      expect((await rest(t, 'from the first app')).status).toBe(201);
      expect((await rest(other, 'second app again')).status).toBe(201);
      const clientMsgId = randomUUID();
      const answers = await Promise.all(
        [t, other, t, other, t, other].map((app) =>
          app.http().post(messages()).set(user.auth).send({ clientMsgId, content: 'once' }),
        ),
      );
      for (const a of answers) expect([200, 201]).toContain(a.status);
      expect(new Set(answers.map((a) => (a.body as { id: number }).id)).size).toBe(1);
      const [{ n }] = await db.query<{ n: number }[]>(
        `SELECT count(*)::int AS n FROM messages WHERE client_msg_id = $1`,
        [clientMsgId],
      );
      expect(n).toBe(1);
    } finally {
      await other.close();
    }
  });
});
