import {
  ArgumentsHost,
  CallHandler,
  Catch,
  ExceptionFilter,
  ExecutionContext,
  Injectable,
  Logger,
  NestInterceptor,
} from '@nestjs/common';
import { from, lastValueFrom, type Observable } from 'rxjs';
import { AppError, ErrorCode } from '../common/errors';
import { toAppError } from '../common/http-exception.filter';
import { CommandTracker } from '../limits/command-tracker';
import { commandLimitsOf } from '../limits/limits.decorators';
import { MetricsService } from '../metrics/metrics.service';
import type { Ack } from './contract';
import type { ChatSocket } from './types';

/**
 * Wraps every handler result as `{ ok: true, data }` for the ack callback, counts acks by
 * result code, times message.send, and runs each command through the per-user limits
 * (CommandTracker: in-flight caps, the handler's rate-limit bucket, the fair database budget),
 * which also counts it for graceful shutdown.
 */
@Injectable()
export class WsAckInterceptor implements NestInterceptor {
  constructor(
    private readonly commands: CommandTracker,
    private readonly metrics: MetricsService,
  ) {}

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<Ack<unknown>> {
    const ws = ctx.switchToWs();
    return from(this.ack(ws.getPattern(), ws.getClient<ChatSocket>(), ctx.getHandler(), next));
  }

  private async ack(
    command: string,
    socket: ChatSocket,
    handler: object,
    next: CallHandler,
  ): Promise<Ack<unknown>> {
    const timer = command === 'message.send' ? this.metrics.sendToAck.startTimer() : undefined;
    let code: string = 'ok';
    try {
      const data: unknown = await this.commands.run(
        socket.data.user.id,
        socket.id,
        commandLimitsOf(handler),
        () => lastValueFrom(next.handle(), { defaultValue: null }),
      );
      return { ok: true, data: data ?? null };
    } catch (err) {
      code = toAppError(err).code;
      throw err;
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
    const ack: unknown = host.getArgByIndex(2);
    if (typeof ack !== 'function') return;
    (ack as (res: Ack<never>) => void)(failureAck(error));
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
