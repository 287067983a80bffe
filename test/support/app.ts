import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplication } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { AppModule } from '../../src/app.module';
import { PG_ENDPOINT, type PgEndpoint } from '../../src/database/database.module';
import { configureApp } from '../../src/setup';
import { testEndpoint } from './database';

export const TEST_ENV: Record<string, string> = {
  NODE_ENV: 'test',
  LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
  // CI's second run: the Socket.IO Redis adapter and Redis presence under every gateway test.
  REDIS_URL: process.env.TEST_REDIS_URL ?? '',
  BCRYPT_COST: '4',
  JWT_SECRET: 'test-secret-test-secret-test-secret-0123456789',
  AUTH_THROTTLE_IP_LIMIT: '100000',
  AUTH_THROTTLE_USER_LIMIT: '100000',
  AUTH_THROTTLE_ACCOUNT_LIMIT: '100000',
  // Uploads of every test app land outside the work tree (suites that look at files set their own).
  ATTACHMENTS_DIR: join(tmpdir(), 'parlor-test-attachments'),
};

export interface TestApp {
  app: INestApplication;
  /** Base URL of the listening server (for sockets and raw fetch). */
  url: string;
  http: () => ReturnType<typeof request>;
  close: () => Promise<void>;
}

/**
 * Boots the whole app on a random port, on a fresh database (or on `endpoint`, to run several
 * instances on one database), configured exactly as main.ts.
 */
export async function startApp(
  env: Record<string, string> = {},
  endpoint?: PgEndpoint,
): Promise<TestApp> {
  // @nestjs/config copies validated settings into process.env; undo that, so one test app's
  // settings (say METRICS_TOKEN) never leak into the next app booted in this process.
  const saved = { ...process.env };
  let moduleRef;
  try {
    moduleRef = await Test.createTestingModule({
      imports: [AppModule.register({ ...TEST_ENV, ...env })],
    })
      .overrideProvider(PG_ENDPOINT)
      .useFactory({ factory: endpoint ? () => endpoint : testEndpoint })
      .compile();
  } finally {
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
  }
  const app = moduleRef.createNestApplication<NestExpressApplication>({ bodyParser: false });
  configureApp(app);
  await app.listen(0, '127.0.0.1');
  const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  return {
    app,
    url,
    http: () => request(app.getHttpServer()),
    close: () => app.close(),
  };
}
