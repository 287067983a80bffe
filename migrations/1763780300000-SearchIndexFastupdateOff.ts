import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The message search index without GIN's pending list. With `fastupdate` on (PostgreSQL's
 * default) inserts are cheap until the 4 MB pending list fills, then the insert that fills it
 * merges the whole list into the index: a 0.6 s stall of that send batch, every few seconds at
 * a thousand messages per second (measured; docs/benchmarks.md). Off: every insert updates the
 * index directly, a little dearer each time and never 0.6 s.
 */
export class SearchIndexFastupdateOff1763780300000 implements MigrationInterface {
  name = 'SearchIndexFastupdateOff1763780300000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER INDEX messages_search_idx SET (fastupdate = off)`);
    // Entries already pending are merged now rather than by some later insert.
    await q.query(`SELECT gin_clean_pending_list('messages_search_idx'::regclass)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER INDEX messages_search_idx RESET (fastupdate)`);
  }
}
