/** One user's waiting work: a FIFO of wake-up callbacks, linked into the round-robin ring. */
interface Lane {
  readonly key: string;
  waiters: (() => void)[];
  head: number;
  /** Next lane in the ring of lanes with waiting work (undefined: not in the ring). */
  next: Lane | undefined;
  inRing: boolean;
}

/**
 * A global budget of concurrent database-bound operations, shared fairly between users.
 *
 * While the budget has room, `acquire` succeeds at once (no promise, no allocation). Once it
 * is full, work waits in its user's lane, and every freed slot goes to the next lane in
 * round-robin order: a user with 300 queued reads gets one slot per turn like a user with one,
 * so one user's queue can never fill the budget ahead of everyone else. Every operation is O(1).
 */
export class FairScheduler {
  private active = 0;
  private waiting = 0;
  private readonly lanes = new Map<string, Lane>();
  private ringHead: Lane | undefined;
  private ringTail: Lane | undefined;

  constructor(readonly budget: number) {
    if (!(budget >= 1)) throw new Error('FairScheduler budget must be at least 1');
  }

  /** Operations holding a slot now. */
  get running(): number {
    return this.active;
  }

  /** Operations waiting for a slot. */
  get queued(): number {
    return this.waiting;
  }

  /**
   * Takes a slot for `key` (a user id). Returns true when it was granted at once; otherwise
   * `wait()` must be awaited (the slot is held when it resolves). Call `release()` exactly once
   * per granted slot.
   */
  tryAcquire(): boolean {
    if (this.active < this.budget && this.waiting === 0) {
      this.active++;
      return true;
    }
    return false;
  }

  /** Queues `key` for the next free slot it is due in round-robin order. */
  wait(key: string): Promise<void> {
    return new Promise<void>((resolve) => {
      let lane = this.lanes.get(key);
      if (!lane) {
        lane = { key, waiters: [], head: 0, next: undefined, inRing: false };
        this.lanes.set(key, lane);
      }
      lane.waiters.push(resolve);
      this.waiting++;
      if (!lane.inRing) this.enqueue(lane);
      // A slot may be free (the budget was full only of waiters that were just served).
      if (this.active < this.budget) this.grant();
    });
  }

  /** `tryAcquire() || await wait(key)` in one call (for callers that do not need the fast path). */
  async acquire(key: string): Promise<void> {
    if (!this.tryAcquire()) await this.wait(key);
  }

  /** Frees a slot: handed straight to the next lane in the ring, if any work waits. */
  release(): void {
    this.active--;
    if (this.waiting > 0) this.grant();
  }

  private grant(): void {
    const lane = this.ringHead;
    if (!lane) return;
    this.ringHead = lane.next;
    if (!this.ringHead) this.ringTail = undefined;
    lane.next = undefined;
    lane.inRing = false;
    const wake = lane.waiters[lane.head];
    lane.waiters[lane.head++] = undefined as unknown as () => void;
    this.waiting--;
    if (lane.head < lane.waiters.length) {
      // Drop the served prefix now and then: amortised O(1), bounded memory for a long queue.
      if (lane.head >= 64 && lane.head * 2 >= lane.waiters.length) {
        lane.waiters = lane.waiters.slice(lane.head);
        lane.head = 0;
      }
      this.enqueue(lane);
    } else this.lanes.delete(lane.key);
    this.active++;
    wake();
  }

  private enqueue(lane: Lane): void {
    lane.inRing = true;
    if (this.ringTail) this.ringTail.next = lane;
    else this.ringHead = lane;
    this.ringTail = lane;
  }
}
