/**
 * Runs jobs one at a time per key (a persona in a room), in arrival order, so a persona never
 * writes two replies into one room at once and answers questions in the order they were asked.
 * At most `maxWaiting` jobs wait behind the running one; `push` refuses more.
 */
export class KeyedSerialQueue {
  private readonly lanes = new Map<string, (() => Promise<void>)[]>();
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly maxWaiting: number,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Queues `job` under `key`; false (and nothing queued) when that lane is full. */
  push(key: string, job: () => Promise<void>): boolean {
    const waiting = this.lanes.get(key);
    if (waiting) {
      if (waiting.length >= this.maxWaiting) return false;
      waiting.push(job);
      return true;
    }
    this.lanes.set(key, []);
    const run = this.drain(key, job);
    this.running.add(run);
    void run.finally(() => this.running.delete(run));
    return true;
  }

  /** Jobs waiting (not running) under `key`. */
  waiting(key: string): number {
    return this.lanes.get(key)?.length ?? 0;
  }

  /** Drops the waiting jobs of every lane whose key matches (running jobs are not touched). */
  drop(matches: (key: string) => boolean = () => true): void {
    for (const [key, waiting] of this.lanes) if (matches(key)) waiting.length = 0;
  }

  /** Resolves when every lane has run dry. */
  async idle(): Promise<void> {
    while (this.running.size) await Promise.allSettled([...this.running]);
  }

  private async drain(key: string, first: () => Promise<void>): Promise<void> {
    const waiting = this.lanes.get(key)!;
    for (let job: (() => Promise<void>) | undefined = first; job; job = waiting.shift()) {
      try {
        await job();
      } catch (err) {
        this.onError(err);
      }
    }
    this.lanes.delete(key);
  }
}
