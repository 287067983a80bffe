import { DataSource } from 'typeorm';
import { startApp, type TestApp } from './support/app';
import { SERVER_URL } from './support/database';
import {
  ADMIN_ENV,
  loginAdmin,
  newRoom,
  NO_WRITE_LIMITS,
  send,
  type TestRoom,
  type TestUser,
} from './support/factories';
import { sleep } from './support/socket';

/**
 * Message search off the send path (migration SearchPendingList, SearchIndexCleaner): sends put
 * their search entries in the GIN index's pending list, search finds them there at once, and the
 * cleaner merges the list into the index every SEARCH_INDEX_CLEAN_MS.
 */
describe(`search index upkeep (e2e, ${SERVER_URL ? 'server PostgreSQL' : 'PGlite'})`, () => {
  let t: TestApp | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  /** Merges the pending list now; the pages it held. */
  const merge = async (app: TestApp): Promise<number> => {
    const [row] = await app.app
      .get(DataSource)
      .query<{ pages: string }[]>(
        `SELECT gin_clean_pending_list('messages_search_idx'::regclass) AS pages`,
      );
    return Number(row.pages);
  };
  const setUp = async (cleanMs: string): Promise<[TestApp, TestUser, TestRoom]> => {
    const app = await startApp({
      ...ADMIN_ENV,
      ...NO_WRITE_LIMITS,
      SEARCH_INDEX_CLEAN_MS: cleanMs,
    });
    const admin = await loginAdmin(app);
    return [app, admin, await newRoom(app, admin)];
  };
  const sendMany = async (app: TestApp, admin: TestUser, room: TestRoom, word: string) => {
    for (let i = 0; i < 20; i++) await send(app, admin, room.id, `${word} number ${i} is here`);
  };
  const search = async (app: TestApp, admin: TestUser, room: TestRoom, q: string) =>
    (
      await app
        .http()
        .get(`/api/v1/rooms/${room.id}/messages/search?q=${q}&limit=50`)
        .set(admin.auth)
        .expect(200)
    ).body.items as unknown[];

  it('sends fill the pending list and search finds them there at once (the cleaner off)', async () => {
    const [app, admin, room] = await setUp('0');
    t = app;
    const [{ reloptions }] = await app.app
      .get(DataSource)
      .query<{ reloptions: string[] | null }[]>(
        `SELECT reloptions FROM pg_class WHERE relname = 'messages_search_idx'`,
      );
    expect(reloptions).toContain('fastupdate=on');
    await merge(app);
    await sendMany(app, admin, room, 'aardvark');
    expect(await search(app, admin, room, 'aardvark')).toHaveLength(20);
    expect(await merge(app)).toBeGreaterThan(0); // the entries were pending, not merged
    expect(await search(app, admin, room, 'aardvark')).toHaveLength(20); // and merged, still found
  });

  it('the cleaner merges the pending list by itself', async () => {
    const [app, admin, room] = await setUp('100');
    t = app;
    await sendMany(app, admin, room, 'okapi');
    // At least one merge after the last send: nothing is left pending.
    await sleep(1500);
    expect(await merge(app)).toBe(0);
    expect(await search(app, admin, room, 'okapi')).toHaveLength(20);
  });
});
