import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The message search index with GIN's pending list again (`fastupdate`, PostgreSQL's default),
 * now merged off the send path: inserts append their entries to the list, and the app merges it
 * into the index every SEARCH_INDEX_CLEAN_MS (SearchIndexCleaner), long before the 4 MB list
 * fills (an insert that fills it merges it inline: the 0.6 s stall that made
 * SearchIndexFastupdateOff turn the list off). Measured with `npm run bench -- parts`: the send
 * statement's CPU per row −33 % to −56 % at 4–256 rows, the merges' CPU counted
 * (docs/benchmarks.md, "Search entries merged off the send path").
 */
export class SearchPendingList1763780900000 implements MigrationInterface {
  name = 'SearchPendingList1763780900000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER INDEX messages_search_idx SET (fastupdate = on)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER INDEX messages_search_idx SET (fastupdate = off)`);
    await q.query(`SELECT gin_clean_pending_list('messages_search_idx'::regclass)`);
  }
}
