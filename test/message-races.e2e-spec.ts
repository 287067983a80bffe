import { DataSource } from 'typeorm';
import { startApp, TestApp } from './support/app';
import {
  ADMIN_ENV,
  join,
  NO_WRITE_LIMITS,
  loginAdmin,
  newRoom,
  newUser,
  send,
  SentMessage,
  TestRoom,
  TestUser,
} from './support/factories';
import { call, connect, type ClientSocket } from './support/socket';

/**
 * Edits, deletes and reactions racing each other, with real concurrency. Embedded PGlite runs
 * one query at a time and hides these races; CI's second pass runs this file on server
 * PostgreSQL, where it fails on a store whose room lock does not cover the statements that
 * read the message (the lock inside a single READ COMMITTED statement, whose snapshot predates
 * the lock) or whose UPDATE does not re-check `deleted_at`.
 *
 * Each test counts every broken invariant and compares the counts with zero, so a failure says
 * how many races went wrong and how.
 */
const MAX_EDITS = 20;
/** Hundreds of requests per test, on a shared CI runner. */
const RACE_TIMEOUT = 90_000;

interface Row {
  id: string;
  content: string;
  deleted: boolean;
  search: string;
  version: string;
  edits: number;
  reactions: number;
}

describe('message races (e2e; real concurrency on server PostgreSQL)', () => {
  let t: TestApp;
  let db: DataSource;
  let alice: TestUser;
  let bob: TestUser;
  let room: TestRoom;
  const api = (path: string) => `/api/v1${path}`;

  beforeAll(async () => {
    // Races need many concurrent writes from one user: the rate limits and the per-user
    // in-flight cap (covered in limits.e2e-spec) are raised out of the way.
    t = await startApp({
      ...ADMIN_ENV,
      ...NO_WRITE_LIMITS,
      USER_MAX_INFLIGHT: '1000',
      MESSAGE_MAX_EDITS: String(MAX_EDITS),
    });
    db = t.app.get(DataSource);
    const admin = await loginAdmin(t);
    [alice, bob] = [await newUser(t), await newUser(t)];
    room = await newRoom(t, admin);
    await join(t, alice, room.id);
    await join(t, bob, room.id);
  });
  afterAll(() => t.close());

  const sendMany = (n: number, prefix: string): Promise<SentMessage[]> =>
    Promise.all(Array.from({ length: n }, (_, i) => send(t, alice, room.id, `${prefix} ${i}`)));

  async function rows(ids: number[]): Promise<Map<number, Row>> {
    const result = await db.query<Row[]>(
      `SELECT m.id, m.content, m.deleted_at IS NOT NULL AS deleted, m.search::text AS search,
              m.version,
              (SELECT count(*)::int FROM message_edits e WHERE e.message_id = m.id) AS edits,
              (SELECT count(*)::int FROM reactions r WHERE r.message_id = m.id) AS reactions
         FROM messages m WHERE m.id = ANY($1::bigint[])`,
      [ids],
    );
    return new Map(result.map((r) => [Number(r.id), r]));
  }

  const patch = (m: SentMessage, content: string) =>
    t
      .http()
      .patch(api(`/messages/${m.id}`))
      .set(alice.auth)
      .send({ content });
  const remove = (m: SentMessage) =>
    t
      .http()
      .delete(api(`/messages/${m.id}`))
      .set(alice.auth);
  /** Starts `f` after `ms` milliseconds: staggering the racers makes both orders happen. */
  const after = <T>(ms: number, f: () => PromiseLike<T>): Promise<T> =>
    new Promise((resolve, reject) => setTimeout(() => void f().then(resolve, reject), ms));

  it(
    'edit racing delete (60 races): the tombstone keeps no text anywhere; a late edit is NOT_FOUND',
    async () => {
      const msgs = await sendMany(60, 'original text');
      // Per message three edits and the delete, staggered by a few milliseconds so that the
      // delete falls among them.
      const results = await Promise.all(
        msgs.map((m, i) =>
          Promise.all([
            Promise.all([
              patch(m, `edited text ${i}.0`),
              after(i % 3, () => patch(m, `edited text ${i}.1`)),
              after(i % 5, () => patch(m, `edited text ${i}.2`)),
            ]),
            after(i % 4, () => remove(m)),
          ]),
        ),
      );
      const state = await rows(msgs.map((m) => m.id));
      const broken = {
        deleteNot204: 0,
        editNeither200Nor404: 0,
        edit404NotNotFound: 0,
        edit200NotTheEdit: 0,
        edit200AfterTheDelete: 0,
        notDeleted: 0,
        tombstoneWithContent: 0,
        tombstoneWithSearchText: 0,
        tombstoneWithEditHistory: 0,
        editsHistoryAnswered: 0,
      };
      let edited = 0;
      let refused = 0;
      for (const [i, m] of msgs.entries()) {
        const [edits, del] = results[i];
        const row = state.get(m.id)!;
        if (del.status !== 204) broken.deleteNot204++;
        for (const [k, ed] of edits.entries()) {
          if (ed.status === 200) {
            edited++;
            const body = ed.body as { content?: string; deletedAt: string | null; version: number };
            if (body.content !== `edited text ${i}.${k}` || body.deletedAt !== null)
              broken.edit200NotTheEdit++;
            if (body.version >= Number(row.version)) broken.edit200AfterTheDelete++;
          } else if (ed.status === 404) {
            refused++;
            if ((ed.body as { code?: string }).code !== 'NOT_FOUND') broken.edit404NotNotFound++;
          } else broken.editNeither200Nor404++;
        }
        if (!row.deleted) broken.notDeleted++;
        if (row.content !== '') broken.tombstoneWithContent++;
        if (row.search !== '') broken.tombstoneWithSearchText++;
        if (row.edits > 0) broken.tombstoneWithEditHistory++;
      }
      // And through the API: the history of a tombstone is gone, search finds none of the texts.
      const histories = await Promise.all(
        msgs.map((m) =>
          t
            .http()
            .get(api(`/messages/${m.id}/edits`))
            .set(alice.auth),
        ),
      );
      broken.editsHistoryAnswered = histories.filter((h) => h.status !== 404).length;
      const found = await t
        .http()
        .get(api(`/rooms/${room.id}/messages/search?q=edited&limit=100`))
        .set(alice.auth)
        .expect(200);
      const ids = new Set(msgs.map((m) => m.id));
      expect((found.body.items as { id: number }[]).filter((x) => ids.has(x.id))).toEqual([]);
      // Printed so a run shows how the races fell (both orders should occur on a server).
      console.info(`edit vs delete: ${edited} edits before the delete, ${refused} after`);
      expect(broken).toEqual(Object.fromEntries(Object.keys(broken).map((k) => [k, 0])));
    },
    RACE_TIMEOUT,
  );

  it(
    'reaction racing delete (60 races, socket and REST): a tombstone has no reactions; a late reaction is NOT_FOUND',
    async () => {
      const msgs = await sendMany(60, 'react then vanish');
      const sockets: ClientSocket[] = await Promise.all(
        Array.from({ length: 4 }, () => connect(t, bob.accessToken)),
      );
      interface Outcome {
        ok: boolean;
        code?: string;
        version: number;
        reactions: { emoji: string; userIds: string[] }[];
      }
      const overSocket = (i: number, m: SentMessage, emoji: string): Promise<Outcome> =>
        call(
          sockets[i % sockets.length],
          'reaction.add',
          { messageId: m.id, emoji },
          RACE_TIMEOUT - 10_000,
        ).then((ack) =>
          ack.ok
            ? { ok: true, version: ack.data.version, reactions: ack.data.reactions }
            : { ok: false, code: ack.error.code, version: 0, reactions: [] },
        );
      const overRest = (user: TestUser, m: SentMessage, emoji: string): Promise<Outcome> =>
        t
          .http()
          .put(api(`/messages/${m.id}/reactions/${encodeURIComponent(emoji)}`))
          .set(user.auth)
          .then((res) =>
            res.status === 200
              ? { ok: true, version: res.body.version, reactions: res.body.reactions }
              : { ok: false, code: res.body.code, version: 0, reactions: [] },
          );
      try {
        // Per message three reactions (bob over a socket, bob and alice over REST) and the
        // delete, staggered by a few milliseconds so that the delete falls among them.
        const results = await Promise.all(
          msgs.map((m, i) =>
            Promise.all([
              after(i % 3, () => remove(m)).then((r) => r.status),
              Promise.all([
                overSocket(i, m, '👍'),
                after(i % 5, () => overRest(bob, m, '🔥')),
                after(i % 7, () => overRest(alice, m, '🎉')),
              ]),
            ]),
          ),
        );
        const state = await rows(msgs.map((m) => m.id));
        const broken = {
          deleteNot204: 0,
          reactionNeitherOkNorNotFound: 0,
          reactionOkWithoutTheReaction: 0,
          reactionOkAfterTheDelete: 0,
          notDeleted: 0,
          tombstoneWithReactions: 0,
        };
        let landed = 0;
        let refused = 0;
        for (const [i, m] of msgs.entries()) {
          const [deleted, reactions] = results[i];
          const row = state.get(m.id)!;
          if (deleted !== 204) broken.deleteNot204++;
          for (const [k, rx] of reactions.entries()) {
            if (rx.ok) {
              landed++;
              const emoji = ['👍', '🔥', '🎉'][k];
              if (!rx.reactions.some((r) => r.emoji === emoji))
                broken.reactionOkWithoutTheReaction++;
              if (rx.version >= Number(row.version)) broken.reactionOkAfterTheDelete++;
            } else if (rx.code === 'NOT_FOUND') refused++;
            else broken.reactionNeitherOkNorNotFound++;
          }
          if (!row.deleted) broken.notDeleted++;
          if (row.reactions > 0) broken.tombstoneWithReactions++;
        }
        console.info(`reaction vs delete: ${landed} reactions before the delete, ${refused} after`);
        expect(broken).toEqual(Object.fromEntries(Object.keys(broken).map((k) => [k, 0])));
      } finally {
        for (const s of sockets) s.close();
      }
    },
    RACE_TIMEOUT,
  );

  it(
    '20 concurrent edits of one message (3 messages at once): 20 history rows each, one per edit, each the text before it',
    async () => {
      const msgs = await sendMany(3, 'v0');
      const results = await Promise.all(
        msgs.flatMap((m, k) =>
          Array.from({ length: 20 }, (_, i) => patch(m, `m${k} v${i + 1}`).then((r) => r.status)),
        ),
      );
      expect(results.filter((s) => s !== 200)).toEqual([]);
      const broken = { wrongHistoryLength: 0, historyNotAChain: 0, apiHistoryDiffers: 0 };
      for (const [k, m] of msgs.entries()) {
        const history = (
          await db.query<{ content: string }[]>(
            `SELECT content FROM message_edits WHERE message_id = $1 ORDER BY id`,
            [m.id],
          )
        ).map((r) => r.content);
        const [{ content: final }] = await db.query<{ content: string }[]>(
          `SELECT content FROM messages WHERE id = $1`,
          [m.id],
        );
        if (history.length !== 20) broken.wrongHistoryLength++;
        // Serialised edits form a chain: the first row is the original text, and the texts after
        // it plus the final content are every edit's text exactly once.
        const chain = [...history.slice(1), final].sort();
        const all = Array.from({ length: 20 }, (_, i) => `m${k} v${i + 1}`).sort();
        if (history[0] !== m.content || JSON.stringify(chain) !== JSON.stringify(all))
          broken.historyNotAChain++;
        const page = await t
          .http()
          .get(api(`/messages/${m.id}/edits?limit=100`))
          .set(bob.auth)
          .expect(200);
        const listed = (page.body.items as { content: string }[]).map((e) => e.content);
        if (JSON.stringify(listed) !== JSON.stringify(history)) broken.apiHistoryDiffers++;
      }
      expect(broken).toEqual({ wrongHistoryLength: 0, historyNotAChain: 0, apiHistoryDiffers: 0 });
    },
    RACE_TIMEOUT,
  );

  it(
    `the edit bound holds under concurrency: 35 concurrent edits, exactly ${MAX_EDITS} land, the rest are CONFLICT`,
    async () => {
      const [m] = await sendMany(1, 'bounded');
      const results = await Promise.all(
        Array.from({ length: 35 }, (_, i) => patch(m, `bounded ${i + 1}`)),
      );
      const ok = results.filter((r) => r.status === 200).length;
      const conflicts = results.filter(
        (r) =>
          r.status === 409 &&
          (r.body as { code: string; message: string }).code === 'CONFLICT' &&
          /edit limit/i.test((r.body as { message: string }).message),
      ).length;
      const [{ n }] = await db.query<{ n: number }[]>(
        `SELECT count(*)::int AS n FROM message_edits WHERE message_id = $1`,
        [m.id],
      );
      expect({ ok, conflicts, historyRows: n }).toEqual({
        ok: MAX_EDITS,
        conflicts: 35 - MAX_EDITS,
        historyRows: MAX_EDITS,
      });
    },
    RACE_TIMEOUT,
  );
});
