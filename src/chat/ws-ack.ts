import { ArgumentsHost, Catch, ExceptionFilter, Logger } from '@nestjs/common';
import { AppError, ErrorCode } from '../common/errors';
import { toAppError } from '../common/http-exception.filter';
import { CommandTracker } from '../limits/command-tracker';
import type { CommandLimits } from '../limits/limits.decorators';
import { MetricsService } from '../metrics/metrics.service';
import type { Ack } from './contract';
import type { ChatSocket } from './types';

export type AckFn = (response: Ack<unknown>) => void;

/**
 * How every socket command is run and answered (the adapter's dispatcher calls it:
 * ParlorIoAdapter.bindMessageHandlers): through the per-user limits (CommandTracker: in-flight
 * caps, the handler's rate-limit bucket, the fair database budget, and the count graceful
 * shutdown waits for), then the handler through Nest (`invoke`: the global guards and
 * interceptors, the pipes, then the method; a failure goes to WsAckExceptionFilter, which
 * answers through `answer`), and its result as `{ ok: true, data }` (unless the handler acks
 * by itself, `@Ack()`). Counts acks by result code and times message.send.
 *
 * Not a Nest interceptor: each interceptor costs every command rxjs pipelines and an async
 * scope (docs/benchmarks.md, issue 17).
 */
export class WsCommandRunner {
  private readonly logger = new Logger('Gateway');

  constructor(
    private readonly commands: CommandTracker,
    private readonly metrics: MetricsService,
  ) {}

  async run(
    command: string,
    socket: ChatSocket,
    limits: CommandLimits,
    invoke: (answer: AckFn) => Promise<unknown>,
    ack: AckFn | undefined,
    acksItself = false,
  ): Promise<void> {
    const timer = command === 'message.send' ? this.metrics.sendToAck.startTimer() : undefined;
    let code: string = 'ok';
    let answered = false;
    // The exception filter answers a failure through this (and an `@Ack()` handler its result),
    // on to the client's ack if it sent one.
    const answer: AckFn = (response) => {
      answered = true;
      if (!response.ok) code = response.error.code;
      ack?.(response);
    };
    try {
      const data = await this.commands.run(socket.data.user.id, socket.id, limits, () =>
        invoke(answer),
      );
      if (!answered && !acksItself) ack?.({ ok: true, data: data ?? null });
    } catch (err) {
      // Refused by the limits before the handler ran (the handler's own failures reach the
      // filter, so anything else here is a bug in it).
      const error = toAppError(err);
      code = error.code;
      if (error.code === ErrorCode.INTERNAL)
        this.logger.error({ msg: `Unhandled failure in ${command}`, socketId: socket.id, err });
      ack?.(failureAck(error));
    } finally {
      this.metrics.acks.inc({ command, result: code });
      timer?.();
    }
  }
}

/**
 * The one WS error shape: every failure becomes the ack `{ ok: false, error }`. Without an ack
 * callback the error is dropped (the client asked for no answer); the process never crashes.
 */
@Catch()
export class WsAckExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('Gateway');

  catch(exception: unknown, host: ArgumentsHost): void {
    const error = toAppError(exception);
    if (error.code === ErrorCode.INTERNAL || error.code === ErrorCode.UNAVAILABLE) {
      const socketId = host.getArgByIndex<{ id?: string } | undefined>(0)?.id;
      // `err` as the Error itself: the log line gets its message, stack and code.
      this.logger.error({ msg: `Command failed: ${error.code}`, socketId, err: exception });
    }
    // WsCommandRunner's `answer`: it counts the failure and forwards it to the client's ack.
    const ack: unknown = host.getArgByIndex(2);
    if (typeof ack !== 'function') return;
    (ack as AckFn)(failureAck(error));
  }
}

/** The ack of a failed command: `{ ok: false, error }` in the one error vocabulary. */
export function failureAck(error: AppError): Ack<never> {
  return {
    ok: false,
    error: {
      code: error.code,
      message: error.message,
      ...(error.retryAfterMs !== undefined ? { retryAfterMs: error.retryAfterMs } : {}),
      ...(error.details !== undefined ? { details: error.details } : {}),
    },
  };
}
