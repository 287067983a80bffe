import { LoggerService } from '@nestjs/common';
import type { Request, RequestHandler } from 'express';
import { randomUUID } from 'node:crypto';
import pino, { Level, Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import pretty from 'pino-pretty';

/**
 * JSON lines in production (and tests); in development one readable line per entry; both written
 * synchronously in this thread (so the order of lines is the order of events, and the last
 * line before an exit is not lost), coloured only when stdout is a terminal.
 */
export function createRootLogger(level: string, readable: boolean): Logger {
  // Synchronous in production too: the last lines before an exit (the stop line, a fatal error)
  // must not sit in a buffer the exiting process never flushes. (Node writes stdout to a pipe or
  // a file synchronously anyway.)
  if (!readable) return pino({ level }, pino.destination({ dest: 1, sync: true }));
  return pino(
    { level },
    pretty({
      sync: true,
      singleLine: true,
      ignore: 'pid,hostname,context',
      messageFormat: '{if context}{context}: {end}{msg}',
      translateTime: 'SYS:HH:MM:ss.l',
    }),
  );
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

/**
 * Nest's own start-up chatter: the module graph, every mapped route and socket handler (about
 * 80 lines). Debug, not info: the boot says what matters in a few lines of its own. Nest's
 * RoutesResolver line names each controller with the global prefix even for routes excluded
 * from it (`HealthController {/api/v1/health}` for `/health`): trace, as the RouterExplorer
 * lines (`Mapped {/health, GET} route`) give every route's real path at debug.
 */
export const NEST_BOOT_CONTEXTS: Readonly<Record<string, Level>> = {
  NestFactory: 'debug',
  NestApplication: 'debug',
  InstanceLoader: 'debug',
  RoutesResolver: 'trace',
  RouterExplorer: 'debug',
  WebSocketsController: 'debug',
};

/**
 * Nest's own log lines through pino, so every line has one format. `levels` moves all lines of
 * a context to one level (see NEST_BOOT_CONTEXTS).
 */
export class PinoNestLogger implements LoggerService {
  private readonly levels: Readonly<Record<string, Level>>;
  constructor(
    private readonly root: Logger,
    levels: Readonly<Record<string, Level>> = {},
  ) {
    this.levels = { ...NEST_BOOT_CONTEXTS, ...levels };
  }
  private at(context?: unknown) {
    return typeof context === 'string' ? this.root.child({ context }) : this.root;
  }
  private write(level: Level, message: unknown, context?: unknown) {
    const [fields, text] = logEntry(message);
    this.at(context)[this.levelOf(context) ?? level](fields, text);
  }
  private levelOf(context: unknown): Level | undefined {
    return typeof context === 'string' && Object.hasOwn(this.levels, context)
      ? this.levels[context]
      : undefined;
  }
  log(message: unknown, context?: unknown) {
    this.write('info', message, context);
  }
  /**
   * Nest calls error(message, stack?, context?): with one extra argument it is the context. A
   * stack's first line (the error itself) joins the text, so the line says what went wrong
   * ("Unable to connect to the database. Retrying (1)... (Error: connect ECONNREFUSED …)").
   */
  error(message: unknown, trace?: unknown, context?: unknown) {
    const [fields, summary] = logEntry(message);
    let text = summary;
    if (typeof trace === 'string' && context) {
      fields.trace = trace;
      const cause = trace.split('\n', 1)[0].trim();
      if (cause && !text.includes(cause)) text = text ? `${text} (${cause})` : cause;
    }
    const ctx = context ?? trace;
    this.at(ctx)[this.levelOf(ctx) ?? 'error'](fields, text);
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

/** Liveness, readiness and scrapes: every few seconds each, so at debug while they succeed. */
const PROBES = new Set(['/health', '/health/ready', '/metrics']);

const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * Request logs with a request id on every line and in the X-Request-Id response header (a
 * valid incoming X-Request-Id is kept). Method and path only: no headers, no query strings.
 * At info, except successful probes (PROBES), at debug.
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
    customLogLevel: (req, res) => {
      const path = ((req as Request).originalUrl ?? req.url ?? '').split('?')[0];
      return PROBES.has(path) && res.statusCode < 400 ? 'debug' : 'info';
    },
  }) as RequestHandler;
}
