import { Logger, type Type } from '@nestjs/common';
import {
  EXCEPTION_FILTERS_METADATA,
  GUARDS_METADATA,
  INTERCEPTORS_METADATA,
  PIPES_METADATA,
} from '@nestjs/common/constants.js';
import { MetadataScanner } from '@nestjs/core';
import { PARAM_ARGS_METADATA } from '@nestjs/websockets/constants.js';
import { GatewayMetadataExplorer } from '@nestjs/websockets/gateway-metadata-explorer.js';
import { WsParamtype } from '@nestjs/websockets/enums/ws-paramtype.enum.js';
import { ROLES } from '../auth/decorators';
import { AppError, ErrorCode } from '../common/errors';
import { toAppError } from '../common/http-exception.filter';
import { createValidationPipe } from '../common/validation';
import { CommandTracker } from '../limits/command-tracker';
import { commandLimitsOf, type CommandLimits } from '../limits/limits.decorators';
import { MetricsService } from '../metrics/metrics.service';
import type { Ack } from './contract';
import type { ChatSocket } from './types';

export type AckFn = (response: Ack<unknown>) => void;

/** A socket command as the runner calls it: its limits, and its handler behind validation. */
export interface GatewayCommand {
  limits: CommandLimits;
  /** The payload through the validation pipe, then the handler; its result, or it throws. */
  invoke: (socket: ChatSocket, payload: unknown) => Promise<unknown>;
}

/**
 * How every socket command is run and answered (the adapter's dispatcher calls it:
 * ParlorIoAdapter.bindMessageHandlers): through the per-user limits (CommandTracker: in-flight
 * caps, the handler's rate-limit bucket, the fair database budget, and the count graceful
 * shutdown waits for), then the command (validation, the handler: `gatewayCommands`), its
 * result as `{ ok: true, data }` and any failure, the limits' refusal or the handler's, as
 * `{ ok: false, error }` in the one error vocabulary. Counts acks by result code and times
 * message.send.
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
    invoke: () => Promise<unknown>,
    ack: AckFn | undefined,
  ): Promise<void> {
    const timer = command === 'message.send' ? this.metrics.sendToAck.startTimer() : undefined;
    let code: string = 'ok';
    try {
      const data = await this.commands.run(socket.data.user.id, socket.id, limits, invoke);
      ack?.({ ok: true, data: data ?? null });
    } catch (err) {
      const error = toAppError(err);
      code = error.code;
      if (error.code === ErrorCode.INTERNAL || error.code === ErrorCode.UNAVAILABLE) {
        // `err` as the Error itself: the log line gets its message, stack and code.
        this.logger.error({
          msg: `Command failed: ${error.code}`,
          command,
          socketId: socket.id,
          err,
        });
      }
      // Without an ack callback the error is dropped (the client asked for no answer).
      ack?.(failureAck(error));
    } finally {
      this.metrics.acks.inc({ command, result: code });
      timer?.();
    }
  }
}

/**
 * Each `@SubscribeMessage` method of a gateway (as Nest finds them, inherited ones included) as a
 * command, called directly: its payload through the shared validation pipe (with a DTO's fast
 * path), then the method with (socket, payload). Not through Nest's per-call chain (execution
 * contexts, the global guards and interceptor, which let socket commands through untouched,
 * rxjs, an exception filter): that chain was 6–12 % of the server's CPU per message
 * (docs/benchmarks.md, issue 17).
 *
 * So that nothing is skipped silently, a gateway is refused at boot if it or a handler declares
 * guards, interceptors, pipes, filters or roles (`@UseGuards`, `@Roles` …); if a handler's
 * parameters are not exactly `(@ConnectedSocket(), @MessageBody())` (no `@Ack()`, no body
 * property, pipes or schema) or its payload is not typed with a DTO class (the pipe would pass
 * anything else through unvalidated); or if two handlers share a command. Global guards,
 * interceptors and pipes (APP_GUARD …) are not run: Parlor's let socket commands through
 * (src/auth/guards.ts, src/limits/http-limits.interceptor.ts), and sockets authenticate in the
 * handshake.
 */
export function gatewayCommands(gateway: object): Map<string, GatewayCommand> {
  const type = gateway.constructor;
  const proto = Object.getPrototypeOf(gateway) as object;
  const refuse = (what: string): never => {
    throw new Error(`${type.name}: ${what}; WsCommandRunner runs commands without them`);
  };
  const declares = (target: object) =>
    [GUARDS_METADATA, INTERCEPTORS_METADATA, PIPES_METADATA, EXCEPTION_FILTERS_METADATA].some(
      (key) => (Reflect.getMetadata(key, target) as unknown[] | undefined)?.length,
    ) || Reflect.getMetadata(ROLES, target) !== undefined;
  if (declares(type)) refuse('declares guards, interceptors, pipes, filters or roles');
  const pipe = createValidationPipe();
  const out = new Map<string, GatewayCommand>();
  for (const { message, methodName: name, callback } of new GatewayMetadataExplorer(
    new MetadataScanner(),
  ).explore(gateway)) {
    const handler = callback as unknown as (socket: ChatSocket, payload: unknown) => unknown;
    if (typeof message !== 'string') refuse(`${name} subscribes to a non-string message`);
    const command = message as string;
    if (out.has(command)) refuse(`two handlers subscribe to ${command}`);
    if (declares(handler)) refuse(`${name} declares guards, interceptors, pipes, filters or roles`);
    const params = (Reflect.getMetadata(PARAM_ARGS_METADATA, type, name) ?? {}) as Record<
      string,
      { index: number; data?: unknown; pipes?: unknown[]; schema?: unknown }
    >;
    const shape = Object.entries(params)
      .map(([key, p]) => {
        const extra = p.data !== undefined || p.pipes?.length || p.schema !== undefined;
        return `${key.split(':')[0]}@${p.index}${extra ? '+' : ''}`;
      })
      .sort()
      .join(',');
    if (shape !== `${WsParamtype.SOCKET}@0,${WsParamtype.PAYLOAD}@1`)
      refuse(`${name} must take (@ConnectedSocket(), @MessageBody()) and nothing else`);
    const types = Reflect.getMetadata('design:paramtypes', proto, name) as unknown;
    if (!Array.isArray(types)) refuse(`${name} has no parameter types (emitDecoratorMetadata)`);
    const metatype = (types as unknown[])[1];
    if (typeof metatype !== 'function' || NOT_DTOS.has(metatype))
      refuse(`${name}'s @MessageBody() must be typed with a DTO class, or it is not validated`);
    out.set(command, {
      limits: commandLimitsOf(handler),
      invoke: async (socket, payload) =>
        handler.call(
          gateway,
          socket,
          await pipe.transform(payload, { type: 'body', metatype: metatype as Type }),
        ),
    });
  }
  return out;
}

/** Types ValidationPipe passes through without validating. */
const NOT_DTOS = new Set<unknown>([Object, String, Number, Boolean, Array, Promise, Date, Buffer]);

/** A command no handler is registered for. */
export const UNKNOWN_COMMAND = new AppError(ErrorCode.NOT_FOUND, 'Unknown command');

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
