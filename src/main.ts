import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { config as loadDotenv } from 'dotenv';
import { AppModule } from './app.module';
import { type Env, validateEnv } from './config/env';
import { configureApp } from './setup';

async function bootstrap(): Promise<void> {
  // Validate first, so a bad environment stops boot with the list of problems and nothing else.
  loadDotenv({ quiet: true });
  const env = validateEnv(process.env);
  const app = await NestFactory.create<NestExpressApplication>(AppModule.register(), {
    bufferLogs: true,
    bodyParser: false,
  });
  configureApp(app);
  const config = app.get<ConfigService<Env, true>>(ConfigService);
  // SIGTERM: Nest's shutdown hooks drain sockets and close the database; this bounds the wait.
  process.once('SIGTERM', () => {
    setTimeout(() => process.exit(1), env.SHUTDOWN_TIMEOUT_MS + 5000).unref();
  });
  // One failed promise somewhere must not take every user's connection down with it.
  process.on('unhandledRejection', (reason) => {
    new Logger('Process').error(
      `Unhandled rejection: ${reason instanceof Error ? reason.stack : String(reason)}`,
    );
  });
  await app.listen(config.get('PORT', { infer: true }), config.get('HOST', { infer: true }));
  process.stdout.write(`Parlor listening on ${await app.getUrl()} (API docs at /docs)\n`);
}

bootstrap().catch((err: unknown) => {
  process.stderr.write(
    `Parlor failed to start: ${err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exit(1);
});
