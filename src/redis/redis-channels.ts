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
      sub.subscribe(channel).catch((err: Error) => {
        this.logger.warn(`not subscribed to ${channel}: ${err.message}`);
      });
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size > 0 || this.listeners.get(channel) !== set) return;
      this.listeners.delete(channel);
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

  private connect(url: string): Redis {
    // ioredis subscribes the connection's channels again on its own after a reconnect.
    const sub = createRedis(url, 'channels', true);
    let connectedOnce = false;
    sub.on('ready', () => {
      if (connectedOnce) for (const l of this.all()) l.reconnected?.();
      connectedOnce = true;
    });
    sub.on('message', (channel: string, raw: string) => {
      for (const l of this.listeners.get(channel) ?? []) l.message(raw);
    });
    return sub;
  }

  private *all(): Iterable<ChannelListener> {
    for (const set of this.listeners.values()) yield* set;
  }
}
