import {
  BeforeApplicationShutdown,
  Injectable,
  Logger,
  OnApplicationBootstrap,
} from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { Env } from '../config/env';
import { MessageStore } from './message-store';

/**
 * Keeps message search off the send path. The search index is a GIN index with its pending
 * list on (migration SearchPendingList): an insert appends its search entries to the list, and
 * this merges the list into the index every SEARCH_INDEX_CLEAN_MS, in bulk (sorted, one index
 * update per word), which costs far less than updating the index row by row at each send.
 * Searches read the list too, so a message is found as soon as it is committed.
 *
 * The merge must keep ahead of the 4 MB list: an insert that fills it merges it inline, a stall
 * of that send batch (docs/benchmarks.md). One merge at a time per instance; several instances
 * each run it, and PostgreSQL runs one merge at a time (the others wait for it, holding a pool
 * connection, then find the list nearly empty). The role must own the index (the one that ran
 * the migrations does).
 */
@Injectable()
export class SearchIndexCleaner implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(SearchIndexCleaner.name);
  private readonly everyMs: number;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private failing = false;

  constructor(
    private readonly store: MessageStore,
    config: ConfigService<Env, true>,
  ) {
    this.everyMs = config.get('SEARCH_INDEX_CLEAN_MS', { infer: true });
  }

  onApplicationBootstrap(): void {
    if (this.everyMs > 0) this.timer = setInterval(() => this.tick(), this.everyMs).unref();
  }

  async beforeApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  private tick(): void {
    this.running ??= this.store
      .mergeSearchPendingList()
      .then(
        () => {
          if (this.failing) this.logger.log('Search index merges work again');
          this.failing = false;
        },
        (err: Error) => {
          // Once per outage, not every second (the database may be down for a while).
          if (!this.failing) this.logger.warn(`Search index merge failed: ${err.message}`);
          this.failing = true;
        },
      )
      .finally(() => (this.running = undefined));
  }
}
