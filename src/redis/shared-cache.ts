import { randomUUID } from 'node:crypto';
import type { RedisChannels } from './redis-channels';

export interface SharedCacheOptions<V> {
  /** The Redis channel on which instances tell each other which key to drop. */
  channel: string;
  /** A held value is read again after this long, whatever happened (the safety net). */
  ttlMs: number;
  /** At most this many keys are held (the least recently loaded goes first). */
  maxKeys: number;
  /** Reads a key's value (from the database). */
  load: (key: string) => Promise<V>;
  /** The instances' channels (none opened on a single instance). */
  channels: RedisChannels;
  /**
   * Called after a key (null: every key) was dropped, whether the change was made here or on
   * another instance, or the subscriber reconnected: for work that must not outlive a change
   * (it may `get` the key again at once: the load reads the new state).
   */
  onDropped?: (key: string | null) => void;
}

interface Invalidation {
  origin: string;
  key: string | null;
}

/**
 * Values held in memory per key, read once on first need, kept coherent across instances:
 * `changed(key)` drops the key here and publishes it on a Redis channel (RedisChannels), and
 * every other instance drops it on that message (after the subscriber reconnects, it drops
 * everything: messages may have been missed). Whatever happens, a value is read again after `ttlMs`.
 *
 * A load under way when its key is dropped answers its callers but is not kept (a generation
 * counter moved on), so a stale read never outlives the change that dropped it.
 */
export class SharedCache<V> {
  private readonly origin = randomUUID();
  private readonly held = new Map<string, { value: V; expires: number }>();
  private readonly loading = new Map<string, Promise<V>>();
  /** Moves on at every drop: a load started before it is not kept. */
  private generation = 0;
  private unlisten = () => {};

  constructor(private readonly options: SharedCacheOptions<V>) {}

  /** Listens on the channel (when instances share Redis). */
  start(): void {
    this.unlisten = this.options.channels.listen(this.options.channel, {
      message: (raw) => this.onMessage(raw),
      reconnected: () => this.drop(null),
    });
  }

  stop(): void {
    this.unlisten();
  }

  /** The key's value: from memory (synchronously) when held, else read once. */
  get(key: string): V | Promise<V> {
    const held = this.held.get(key);
    if (held && held.expires > Date.now()) return held.value;
    return this.loading.get(key) ?? this.load(key);
  }

  /** A change made on this instance: drop the key (null: all) here, and tell the others. */
  changed(key: string | null): void {
    this.drop(key);
    // Unpublished (Redis away), the others fall back on the TTL or on their reconnect.
    const message: Invalidation = { origin: this.origin, key };
    if (this.options.channels.shared)
      this.options.channels.publish(this.options.channel, JSON.stringify(message));
  }

  private onMessage(raw: string): void {
    let message: Partial<Invalidation> | null;
    try {
      message = JSON.parse(raw) as Partial<Invalidation> | null;
    } catch {
      message = null;
    }
    // Not one of ours (a stray publish): dropping everything is the safe answer.
    if (typeof message !== 'object' || message === null) return this.drop(null);
    if (message.origin === this.origin) return;
    this.drop(typeof message.key === 'string' ? message.key : null);
  }

  private drop(key: string | null): void {
    this.generation++;
    if (key === null) {
      this.held.clear();
      this.loading.clear();
    } else {
      this.held.delete(key);
      this.loading.delete(key);
    }
    this.options.onDropped?.(key);
  }

  private load(key: string): Promise<V> {
    const generation = this.generation;
    const loading: Promise<V> = this.options
      .load(key)
      .then((value) => {
        if (generation === this.generation) this.keep(key, value);
        return value;
      })
      .finally(() => {
        if (this.loading.get(key) === loading) this.loading.delete(key);
      });
    this.loading.set(key, loading);
    return loading;
  }

  private keep(key: string, value: V): void {
    this.held.delete(key);
    if (this.held.size >= this.options.maxKeys) this.held.delete(this.held.keys().next().value!);
    this.held.set(key, { value, expires: Date.now() + this.options.ttlMs });
  }
}
