import { Logger } from '@nestjs/common';
import { Redis, type RedisOptions } from 'ioredis';

/** The shared Redis client, or null when REDIS_URL is unset (single instance, nothing changes). */
export const REDIS = Symbol('REDIS');

/**
 * Commands fail fast while Redis is away (one retry, or no offline queue at all for the main
 * client): callers degrade, never hang. The adapter's subscriber needs the queue to subscribe
 * while the first connection is still being made.
 */
export function createRedis(
  url: string,
  name: string,
  offlineQueue = false,
  options: RedisOptions = {},
): Redis {
  const logger = new Logger(`Redis:${name}`);
  const client = new Redis(url, {
    connectionName: `parlor:${name}`,
    lazyConnect: false,
    enableOfflineQueue: offlineQueue,
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    ...options,
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
