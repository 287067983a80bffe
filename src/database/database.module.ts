import { Global, Inject, Logger, Module, OnApplicationShutdown } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { TypeOrmModule } from '@nestjs/typeorm';
import { resolve } from 'node:path';
import { DataSource, type Migration } from 'typeorm';
import type { Env } from '../config/env';
import { EmbeddedPostgres } from './embedded-postgres';
import { dataSourceOptions } from './data-source-options';

/** Where PostgreSQL is: a server (DATABASE_URL) or the embedded one this process started. */
export interface PgEndpoint {
  url: string;
  embedded?: EmbeddedPostgres;
  /** libpq `options`, e.g. `-c search_path=...` (tests isolate suites in schemas on a server). */
  options?: string;
}
export const PG_ENDPOINT = Symbol('PG_ENDPOINT');

const logger = new Logger('Database');

/** Which database, for the boot log: host, port, database and user of a URL, never its password. */
export function describeServer(url: string): string {
  try {
    const u = new URL(url);
    const db = decodeURIComponent(u.pathname.replace(/^\//, '')) || '(default database)';
    const user = u.username ? ` as ${decodeURIComponent(u.username)}` : '';
    return `PostgreSQL server ${u.host || '(local socket)'}/${db}${user}`;
  } catch {
    return 'PostgreSQL server (DATABASE_URL is not a URL)';
  }
}

@Global()
@Module({
  providers: [
    {
      provide: PG_ENDPOINT,
      inject: [ConfigService],
      useFactory: async (config: ConfigService<Env, true>): Promise<PgEndpoint> => {
        const url = config.get('DATABASE_URL', { infer: true });
        if (url) {
          logger.log(describeServer(url));
          return { url };
        }
        const dataDir = config.get('PARLOR_DATA_DIR', { infer: true });
        const embedded = await EmbeddedPostgres.start({
          dataDir,
          maxConnections: config.get('DATABASE_POOL_SIZE', { infer: true }) + 2,
        });
        logger.log(`embedded PostgreSQL (PGlite) in ${resolve(dataDir)}`);
        return { url: embedded.url, embedded };
      },
    },
  ],
  exports: [PG_ENDPOINT],
})
export class PgEndpointModule {}

/**
 * Several replicas may start at once (docker compose): a session-level advisory lock makes
 * them apply pending migrations one after another instead of racing.
 */
async function runMigrationsLocked(dataSource: DataSource): Promise<Migration[]> {
  const lock = dataSource.createQueryRunner();
  await lock.connect();
  try {
    await lock.query('SELECT pg_advisory_lock(7402281001)');
    return await dataSource.runMigrations({ transaction: 'each' });
  } finally {
    await lock.query('SELECT pg_advisory_unlock(7402281001)').catch(() => undefined);
    await lock.release();
  }
}

@Module({
  imports: [
    PgEndpointModule,
    TypeOrmModule.forRootAsync({
      inject: [ConfigService, PG_ENDPOINT],
      useFactory: (config: ConfigService<Env, true>, endpoint: PgEndpoint) => ({
        ...dataSourceOptions({
          url: endpoint.url,
          options: endpoint.options,
          // PGlite runs one query at a time anyway, and pglite-socket mixes up the extended
          // protocol of concurrent connections ("portal does not exist"): one connection.
          poolSize: endpoint.embedded ? 1 : config.get('DATABASE_POOL_SIZE', { infer: true }),
          poolIdleMs: config.get('DATABASE_POOL_IDLE_MS', { infer: true }),
          statementTimeoutMs: endpoint.embedded
            ? undefined
            : config.get('DATABASE_STATEMENT_TIMEOUT', { infer: true }) * 1000,
        }),
        autoLoadEntities: true,
        migrationsRun: config.get('MIGRATIONS_RUN', { infer: true }),
        // The embedded database has one connection and one process (the data-directory lock).
        migrationsLocked: !endpoint.embedded,
      }),
      dataSourceFactory: async (options) => {
        const { migrationsRun, migrationsLocked } = options as {
          migrationsRun?: boolean;
          migrationsLocked?: boolean;
        };
        const dataSource = await new DataSource({ ...options!, migrationsRun: false }).initialize();
        if (!migrationsRun) {
          if (await dataSource.showMigrations()) {
            logger.warn('Migrations pending and MIGRATIONS_RUN=false: run `npm run migration:run`');
          }
          return dataSource;
        }
        const applied = migrationsLocked
          ? await runMigrationsLocked(dataSource)
          : await dataSource.runMigrations({ transaction: 'each' });
        const total = dataSource.migrations.length;
        logger.log(
          applied.length
            ? `applied ${applied.length} of ${total} migrations (${applied.map((m) => m.name).join(', ')})`
            : `schema up to date (${total} migrations)`,
        );
        return dataSource;
      },
    }),
  ],
})
export class DatabaseModule implements OnApplicationShutdown {
  constructor(
    private readonly dataSource: DataSource,
    @Inject(PG_ENDPOINT) private readonly endpoint: PgEndpoint,
  ) {}

  /** Order matters for PGlite: pool closed first, then the socket server, then the database. */
  async onApplicationShutdown(): Promise<void> {
    if (this.dataSource.isInitialized) await this.dataSource.destroy();
    await this.endpoint.embedded?.stop();
  }
}
