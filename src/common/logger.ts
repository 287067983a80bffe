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

/** Nest's own log lines through pino, so every line has one format. */
export class PinoNestLogger implements LoggerService {
  constructor(private readonly root: Logger) {}
  private at(context?: unknown) {
    return typeof context === 'string' ? this.root.child({ context }) : this.root;
  }
  log(message: unknown, context?: unknown) {
    this.at(context).info(message);
  }
  error(message: unknown, trace?: unknown, context?: unknown) {
    this.at(context ?? trace).error(
      typeof trace === 'string' && context ? { trace } : {},
      String(message),
    );
  }
  warn(message: unknown, context?: unknown) {
    this.at(context).warn(message);
  }
  debug(message: unknown, context?: unknown) {
    this.at(context).debug(message);
  }
  verbose(message: unknown, context?: unknown) {
    this.at(context).trace(message);
  }
  fatal(message: unknown, context?: unknown) {
    this.at(context).fatal(message);
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
