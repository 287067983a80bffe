import type { DataSourceOptions } from 'typeorm';
import { migrations } from '../../migrations';

/** One definition for the app, src/cli.ts and ormconfig.ts. `synchronize` is never on. */
export function dataSourceOptions(opts: {
  url: string;
  options?: string;
  poolSize?: number;
  /** How long a pool connection may sit idle before it is closed; 0: never (pg's default: 10 s). */
  poolIdleMs?: number;
  statementTimeoutMs?: number;
}): DataSourceOptions {
  return {
    type: 'postgres',
    url: opts.url,
    synchronize: false,
    migrations,
    migrationsTableName: 'migrations',
    poolSize: opts.poolSize ?? 10,
    extra: {
      // Fail fast instead of hanging when the server is gone (sends answer UNAVAILABLE).
      connectionTimeoutMillis: 5000,
      // An idle connection the network dropped silently (a NAT or balancer timeout) is found
      // out by TCP keepalive instead of hanging the next query until the kernel gives up.
      keepAlive: true,
      keepAliveInitialDelayMillis: 30_000,
      ...(opts.poolIdleMs !== undefined ? { idleTimeoutMillis: opts.poolIdleMs } : {}),
      ...(opts.options ? { options: opts.options } : {}),
      ...(opts.statementTimeoutMs ? { statement_timeout: opts.statementTimeoutMs } : {}),
    },
  };
}
