import { LoggerService } from '@nestjs/common';
import type { RequestHandler } from 'express';
import { randomUUID } from 'node:crypto';
import pino, { Logger } from 'pino';
import { pinoHttp } from 'pino-http';

/** JSON logs in production (and tests), readable single lines in development. */
export function createRootLogger(level: string, pretty: boolean): Logger {
  return pino({
    level,
    ...(pretty ? { transport: { target: 'pino-pretty', options: { singleLine: true } } } : {}),
  });
}

/**
 * A Nest log call's message as pino's (fields, text). An Error goes under `err`, which pino
 * serialises with type, message, stack and code; an object's fields are kept (its `msg` or
 * `message` becomes the text, an Error in `err` is serialised the same way). Never
 * "[object Object]".
 */
export function logEntry(message: unknown): [Record<string, unknown>, string] {
  if (message instanceof Error) return [{ err: message }, message.message];
  if (message !== null && typeof message === 'object') {
    const { msg, message: text, ...fields } = message as Record<string, unknown>;
    const err = fields.err;
    const fallback = err instanceof Error ? err.message : '';
    return [fields, typeof msg === 'string' ? msg : typeof text === 'string' ? text : fallback];
  }
  return [{}, String(message)];
}

/** Nest's own log lines through pino, so every line has one format. */
export class PinoNestLogger implements LoggerService {
  constructor(private readonly root: Logger) {}
  private at(context?: unknown) {
    return typeof context === 'string' ? this.root.child({ context }) : this.root;
  }
  private write(
    level: 'info' | 'warn' | 'debug' | 'trace' | 'fatal',
    message: unknown,
    context?: unknown,
  ) {
    const [fields, text] = logEntry(message);
    this.at(context)[level](fields, text);
  }
  log(message: unknown, context?: unknown) {
    this.write('info', message, context);
  }
  /** Nest calls error(message, stack?, context?): with one extra argument it is the context. */
  error(message: unknown, trace?: unknown, context?: unknown) {
    const [fields, text] = logEntry(message);
    if (typeof trace === 'string' && context) fields.trace = trace;
    this.at(context ?? trace).error(fields, text);
  }
  warn(message: unknown, context?: unknown) {
    this.write('warn', message, context);
  }
  debug(message: unknown, context?: unknown) {
    this.write('debug', message, context);
  }
  verbose(message: unknown, context?: unknown) {
    this.write('trace', message, context);
  }
  fatal(message: unknown, context?: unknown) {
    this.write('fatal', message, context);
  }
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * Request logs with a request id on every line and in the X-Request-Id response header (a
 * valid incoming X-Request-Id is kept). Method and path only: no headers, no query strings.
 */
export function requestLogger(root: Logger): RequestHandler {
  return pinoHttp({
    logger: root,
    genReqId: (req, res) => {
      const given = req.headers['x-request-id'];
      const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
      res.setHeader('X-Request-Id', id);
      return id;
    },
    serializers: {
      req: (req: { id: string; method: string; url: string }) => ({
        id: req.id,
        method: req.method,
        path: req.url.split('?')[0],
      }),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
    },
  }) as RequestHandler;
}
