import { Global, Inject, Logger, Module, OnApplicationShutdown } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { Redis } from 'ioredis';
import type { Env } from '../config/env';
import { createRedis, REDIS } from './redis-client';
import { RedisChannels } from './redis-channels';

export { createRedis, REDIS } from './redis-client';

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
    RedisChannels,
  ],
  exports: [REDIS, RedisChannels],
})
export class RedisModule implements OnApplicationShutdown {
  constructor(@Inject(REDIS) private readonly redis: Redis | null) {}

  onApplicationShutdown(): void {
    this.redis?.disconnect();
  }
}
