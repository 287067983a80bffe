import { Global, Inject, Logger, Module, OnApplicationShutdown } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Redis } from 'ioredis';
import type { Env } from '../config/env';

/** The shared Redis client, or null when REDIS_URL is unset (single instance, nothing changes). */
export const REDIS = Symbol('REDIS');

/**
 * Commands fail fast while Redis is away (one retry, or no offline queue at all for the main
 * client): callers degrade, never hang. The adapter's subscriber needs the queue to subscribe
 * while the first connection is still being made.
 */
export function createRedis(url: string, name: string, offlineQueue = false): Redis {
  const logger = new Logger(`Redis:${name}`);
  const client = new Redis(url, {
    lazyConnect: false,
    enableOfflineQueue: offlineQueue,
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
  let down = false;
  client.on('error', (err: Error) => {
    if (!down) logger.warn(`Redis unavailable: ${err.message}`);
    down = true;
  });
  client.on('ready', () => {
    if (down) logger.log('Redis reconnected');
    down = false;
  });
  return client;
}

/** Host, port and database of a Redis URL for the boot log, never its password. */
function redisHost(url: string): string {
  try {
    const u = new URL(url);
    return `${u.host}${u.pathname.length > 1 ? u.pathname : ''}`;
  } catch {
    return '(REDIS_URL is not a URL)';
  }
}

@Global()
@Module({
  providers: [
    {
      provide: REDIS,
      inject: [ConfigService],
      useFactory: (config: ConfigService<Env, true>) => {
        const url = config.get('REDIS_URL', { infer: true });
        if (!url) return null;
        new Logger('Redis').log(
          `${redisHost(url)} (Socket.IO adapter, presence and rate limits across instances)`,
        );
        return createRedis(url, 'main');
      },
    },
  ],
  exports: [REDIS],
})
export class RedisModule implements OnApplicationShutdown {
  constructor(@Inject(REDIS) private readonly redis: Redis | null) {}

  onApplicationShutdown(): void {
    this.redis?.disconnect();
  }
}
