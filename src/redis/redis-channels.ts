import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { Redis } from 'ioredis';
import type { Env } from '../config/env';
import { createRedis, REDIS } from './redis-client';

/** What listens on a channel. */
export interface ChannelListener {
  /** A message published on the channel (by any instance, this one included). */
  message(raw: string): void;
  /**
   * The subscriber connection came back after a loss: messages published meanwhile were
   * missed, so whatever they would have invalidated must be treated as changed.
   */
  reconnected?(): void;
}

/**
 * Parlor's own pub/sub channels between instances (cache invalidations, persona cancels) over
 * ONE subscriber connection per instance, however many features listen; publishing goes
 * through the shared client (REDIS). The Socket.IO adapter keeps its own connections (sharded
 * pub/sub, subscribed per room). Without REDIS_URL (one instance) nothing is opened: `publish`
 * does nothing and listeners only ever hear this instance's own changes, which their callers
 * apply directly.
 */
@Injectable()
export class RedisChannels implements OnApplicationShutdown {
  private readonly logger = new Logger('RedisChannels');
  private readonly listeners = new Map<string, Set<ChannelListener>>();
  private readonly url: string | undefined;
  private subscriber: Redis | null = null;

  constructor(
    @Inject(REDIS) private readonly redis: Redis | null,
    config: ConfigService<Env, true>,
  ) {
    this.url = redis ? config.get('REDIS_URL', { infer: true }) : undefined;
  }

  /** True when instances share channels (REDIS_URL is set). */
  get shared(): boolean {
    return this.url !== undefined;
  }

  /**
   * Listens on `channel` until the returned function is called. The subscriber connection is
   * opened by the first listener.
   */
  listen(channel: string, listener: ChannelListener): () => void {
    if (!this.url) return () => {};
    const sub = (this.subscriber ??= this.connect(this.url));
    let set = this.listeners.get(channel);
    if (!set) {
      this.listeners.set(channel, (set = new Set()));
      // Not ready: subscribed with the others once it is (below).
      if (sub.status === 'ready') void this.subscribe(sub, [channel]);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size > 0 || this.listeners.get(channel) !== set) return;
      this.listeners.delete(channel);
      // Not ready: nothing to do, a reconnect subscribes only the channels listened to.
      if (sub.status === 'ready') sub.unsubscribe(channel).catch(() => {});
    };
  }

  /** Publishes on `channel`; a failure is logged (listeners fall back on their own safety net). */
  publish(channel: string, message: string): void {
    this.redis?.publish(channel, message).catch((err: Error) => {
      this.logger.warn(`not published on ${channel}: ${err.message}`);
    });
  }

  onApplicationShutdown(): void {
    this.subscriber?.disconnect();
  }

  /**
   * The subscriber. The channels listened to are the truth: at every `ready` (the first one
   * too: listeners may have come while Redis was away, and a subscribe queued then is dropped
   * when the connection attempt fails) they are all subscribed, and once Redis confirmed it,
   * every listener is told that messages may have been missed until then. ioredis's own
   * resubscription is off: it only knows channels whose subscribe had been confirmed.
   */
  private connect(url: string): Redis {
    const sub = createRedis(url, 'channels', true, { autoResubscribe: false });
    sub.on('ready', () => {
      void this.subscribe(sub, [...this.listeners.keys()]).then((ok) => {
        if (ok) for (const l of this.all()) this.deliver(l, 'reconnected');
      });
    });
    sub.on('message', (channel: string, raw: string) => {
      for (const l of this.listeners.get(channel) ?? []) this.deliver(l, 'message', raw);
    });
    return sub;
  }

  /** Subscribes the channels; false (logged) when Redis did not confirm it. */
  private async subscribe(sub: Redis, channels: string[]): Promise<boolean> {
    if (!channels.length) return true;
    try {
      await sub.subscribe(...channels);
      return true;
    } catch (err) {
      // The connection went: the next `ready` subscribes them all again.
      this.logger.warn(`not subscribed to ${channels.join(', ')}: ${(err as Error).message}`);
      return false;
    }
  }

  /** One listener's failure is logged, and does not keep the message from the others. */
  private deliver(l: ChannelListener, what: 'message' | 'reconnected', raw = ''): void {
    try {
      if (what === 'message') l.message(raw);
      else l.reconnected?.();
    } catch (err) {
      this.logger.error(`a listener failed: ${err instanceof Error ? err.stack : String(err)}`);
    }
  }

  private *all(): Iterable<ChannelListener> {
    for (const set of this.listeners.values()) yield* set;
  }
}
