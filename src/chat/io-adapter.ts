import { Logger, type INestApplicationContext } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { IoAdapter } from '@nestjs/platform-socket.io';
import type { MessageMappingProperties } from '@nestjs/websockets';
import { createAdapter } from '@socket.io/redis-adapter';
import type { Redis } from 'ioredis';
import type { IncomingMessage } from 'node:http';
import type { Server, ServerOptions, Socket } from 'socket.io';
import type { Env } from '../config/env';
import { MetricsService } from '../metrics/metrics.service';
import { createRedis } from '../redis/redis.module';
import { shardedAdapter } from './sharded-adapter';
import { CommandTracker } from '../limits/command-tracker';
import { ChatGateway } from './chat.gateway';
import { SocketSessionsService } from './socket-sessions.service';
import type { ChatSocket } from './types';
import {
  failureAck,
  gatewayCommands,
  UNKNOWN_COMMAND,
  WsCommandRunner,
  type AckFn,
  type GatewayCommand,
} from './ws-ack';
import { jsonParser } from './json-parser';
import { coalesceWebSocketWrites } from './write-coalescing';

/**
 * Socket.IO server options from configuration, in one place: packet size limit, CORS, an
 * Origin check that also covers the websocket transport (CORS headers only guard polling), and
 * with REDIS_URL the Redis adapter, which carries broadcasts, socketsJoin/Leave, disconnects and
 * fetchSockets between instances: by default over Redis 7 sharded pub/sub with one channel per
 * room (src/chat/sharded-adapter.ts), so an instance receives only its own rooms' broadcasts;
 * REDIS_ADAPTER=classic: one pattern every instance receives everything on (any Redis version).
 */
export class ParlorIoAdapter extends IoAdapter {
  private readonly config: ConfigService<Env, true>;
  private readonly metrics: MetricsService;
  private readonly runner: WsCommandRunner;
  /** Parlor's one gateway's commands (src/chat/ws-ack.ts), read when the server is created. */
  private commands = new Map<string, GatewayCommand>();
  private readonly log = new Logger('Gateway');
  private readonly clients: Redis[] = [];

  constructor(private readonly app: INestApplicationContext) {
    super(app);
    this.config = app.get(ConfigService);
    this.metrics = app.get(MetricsService);
    this.runner = new WsCommandRunner(app.get(CommandTracker), this.metrics);
  }

  override createIOServer(port: number, options?: ServerOptions): Server {
    this.commands = gatewayCommands(this.app.get(ChatGateway)); // throws on what it cannot run
    const origins = this.config.get('CORS_ORIGINS', { infer: true });
    const server = super.createIOServer(port, {
      ...(options as ServerOptions),
      path: '/socket.io',
      parser: jsonParser, // events and acks encoded without the walk for binary (JSON only)
      maxHttpBufferSize: this.config.get('WS_MAX_PAYLOAD_BYTES', { infer: true }),
      cors: origins.length ? { origin: origins, credentials: true } : undefined,
      allowRequest: (req, callback) => callback(null, originAllowed(req, origins)),
    });
    if (this.config.get('WS_COALESCE_WRITES', { infer: true })) coalesceWebSocketWrites(server);
    const url = this.config.get('REDIS_URL', { infer: true });
    if (url) {
      const pub = createRedis(url, 'adapter-pub', true);
      const sub = createRedis(url, 'adapter-sub', true);
      this.clients.push(pub, sub);
      const received = this.metrics.adapterReceived;
      if (this.config.get('REDIS_ADAPTER', { infer: true }) === 'classic') {
        failFast(pub, 'publish');
        sub.on('pmessageBuffer', () => received.inc({ channel: 'server' }));
        sub.on('messageBuffer', () => received.inc({ channel: 'server' }));
        server.adapter(createAdapter(pub, sub, { requestsTimeout: 3000 }));
      } else {
        failFast(pub, 'spublish');
        server.adapter(shardedAdapter(pub, sub, (channel) => received.inc({ channel })));
      }
      this.recheckOnReconnect(sub);
    }
    return server;
  }

  /**
   * What other instances published while this one's subscriber was away is lost (Redis pub/sub
   * keeps nothing): bans', kicks' and deletions' socketsLeave, revocations, joins. Once it is
   * back and its subscriptions are restored (ioredis re-subscribes right after 'ready'; a PING
   * answers after them), every local socket is checked against the database again.
   */
  private recheckOnReconnect(sub: Redis): void {
    const sessions = this.app.get(SocketSessionsService);
    let connectedOnce = false;
    sub.on('ready', () => {
      if (!connectedOnce) {
        connectedOnce = true;
        return;
      }
      setImmediate(() => {
        void sub
          .ping()
          .catch(() => undefined)
          .then(() => sessions.recheckAll())
          .catch((err: unknown) => this.log.warn({ msg: 'Re-checking sockets failed', err }));
      });
    });
  }

  /**
   * One listener per socket that looks the command up, instead of Nest's default of one rxjs
   * pipeline (`fromEvent` + `mergeMap` + subscribers) per command per socket: that was ~55 of
   * the ~68 KB each idle connection held, and a share of every command's CPU. Each command runs
   * through WsCommandRunner (limits, ack), which calls the gateway's method directly
   * (`gatewayCommands`: validation, then the method), not Nest's per-call chain (`callback`).
   */
  override bindMessageHandlers(socket: Socket, handlers: MessageMappingProperties[]): void {
    if (!this.servesChatGateway(handlers)) {
      // Another gateway (or namespace) would be served ChatGateway's commands: refused loudly,
      // without throwing inside socket.io's connection event (that would end the process).
      this.log.error({ msg: 'ParlorIoAdapter serves ChatGateway only', socketId: socket.id });
      socket.disconnect(true);
      return;
    }
    const commands = this.commands;
    socket.onAny((event: string, ...args: unknown[]) => {
      // As Nest's mapPayload: a trailing function is the ack; one argument is the payload.
      const ack = typeof args.at(-1) === 'function' ? (args.pop() as AckFn) : undefined;
      const data = args.length > 1 ? args : args[0];
      const command = commands.get(event);
      if (!command) {
        ack?.(failureAck(UNKNOWN_COMMAND));
        return;
      }
      void this.runner.run(
        event,
        socket as ChatSocket,
        command.limits,
        () => command.invoke(socket as ChatSocket, data),
        ack,
      );
    });
  }

  /** Whether the commands Nest mapped are ChatGateway's, the one gateway this adapter serves. */
  private servesChatGateway(handlers: MessageMappingProperties[]): boolean {
    const { commands } = this;
    return (
      handlers.length === commands.size && handlers.every((h) => commands.has(h.message as string))
    );
  }

  override async close(server: Server): Promise<void> {
    await super.close(server);
    for (const c of this.clients.splice(0)) c.disconnect();
  }
}

/**
 * While Redis is away, publishes fail at once instead of crashing or queueing (the client keeps
 * an offline queue for its first connection): this instance keeps serving its own sockets
 * (the sharded adapter's joins, leaves and disconnects act locally once their publish has
 * settled, so it must settle at once); other instances resync with `since`.
 */
function failFast(pub: Redis, command: 'publish' | 'spublish'): void {
  let wasReady = false;
  pub.on('ready', () => (wasReady = true));
  const send = pub[command].bind(pub) as (
    channel: string,
    message: string | Buffer,
  ) => Promise<number>;
  (pub as unknown as Record<typeof command, typeof send>)[command] = (channel, message) =>
    wasReady && pub.status !== 'ready' ? Promise.resolve(0) : send(channel, message).catch(() => 0);
}

/** Browsers send Origin; other clients (mobile, Node) do not and are allowed. */
export function originAllowed(req: IncomingMessage, allowed: string[]): boolean {
  const origin = req.headers.origin;
  if (!origin) return true;
  if (allowed.includes(origin)) return true;
  try {
    return new URL(origin).host === req.headers.host; // same origin
  } catch {
    return false;
  }
}
