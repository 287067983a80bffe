import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { config as loadDotenv } from 'dotenv';
import type { Logger as Pino } from 'pino';
import { AppModule } from './app.module';
import { createRootLogger, PinoNestLogger } from './common/logger';
import { validateEnv } from './config/env';
import { configureApp } from './setup';

/** Set once the environment is valid: a failed start prints its stack too at debug and below. */
let verbose = false;
/** Set once the app exists: a failed start releases what it holds (the data-directory lock). */
let started: NestExpressApplication | undefined;

async function bootstrap(): Promise<void> {
  // Validate first, so a bad environment stops boot with the list of problems and nothing else.
  loadDotenv({ quiet: true });
  const env = validateEnv(process.env);
  verbose = env.LOG_LEVEL === 'debug' || env.LOG_LEVEL === 'trace';
  const log = createRootLogger(env.LOG_LEVEL, env.NODE_ENV === 'development');
  const app = await NestFactory.create<NestExpressApplication>(AppModule.register(), {
    // Nest logs through pino from its first line. abortOnError: false makes a failed start
    // reach bootstrap().catch below, which reports it in one line; Nest's own report of the
    // same error (ExceptionHandler, with the stack) is only a debug line then. TypeOrmModule
    // logs each retry of the first database connection: a warning, the start may yet succeed.
    logger: new PinoNestLogger(log, { ExceptionHandler: 'debug', TypeOrmModule: 'warn' }),
    abortOnError: false,
    bodyParser: false,
  });
  started = app;
  configureApp(app, log);
  onStop(log, env.SHUTDOWN_TIMEOUT_MS);
  // One failed promise somewhere must not take every user's connection down with it.
  process.on('unhandledRejection', (reason) => {
    new Logger('Process').error(
      `Unhandled rejection: ${reason instanceof Error ? reason.stack : String(reason)}`,
    );
  });
  await app.listen(env.PORT, env.HOST);
  // Plain text, at every log level: the line people (and scripts) wait for.
  const metrics = env.METRICS_ENABLED ? ', metrics at /metrics' : '';
  process.stdout.write(
    `Parlor listening on ${await app.getUrl()} (API docs at /docs, Socket.IO at /socket.io${metrics})\n`,
  );
}

/**
 * SIGTERM/SIGINT: Nest's shutdown hooks drain sockets and close the database (configureApp),
 * then exit 0; this bounds the wait and says, in one line, that the server stopped.
 */
function onStop(log: Pino, timeoutMs: number): void {
  let signal: NodeJS.Signals | undefined;
  let since = 0;
  const received = (s: NodeJS.Signals) => {
    if (signal) return;
    signal = s;
    since = Date.now();
    setTimeout(() => process.exit(1), timeoutMs + 5000).unref();
  };
  process.once('SIGTERM', received);
  process.once('SIGINT', received);
  process.once('exit', (code) => {
    if (!signal) return;
    const ms = Date.now() - since;
    if (code === 0) log.info({ signal, ms }, 'Parlor stopped');
    else log.error({ signal, ms, code }, 'Parlor stopped without a clean shutdown');
  });
}

/** An error's message and those of its causes, on one line. */
function describe(err: unknown): string {
  const parts: string[] = [];
  for (let e = err, depth = 0; e !== undefined && depth < 5; depth++) {
    parts.push(e instanceof Error ? e.message : typeof e === 'string' ? e : JSON.stringify(e));
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(': ');
}

bootstrap().catch(async (err: unknown) => {
  process.stderr.write(`Parlor failed to start: ${describe(err)}\n`);
  if (verbose && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  const app = started;
  if (app) {
    const giveUp = new Promise((resolve) => setTimeout(resolve, 5000).unref());
    await Promise.race([app.close().catch(() => undefined), giveUp]);
  }
  process.exit(1);
});
