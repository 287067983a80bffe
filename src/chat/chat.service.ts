import { BeforeApplicationShutdown, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { AuthUser } from '../auth/auth-user';
import { AccessPolicy } from '../access/access.policy';
import { AuthService } from '../auth/auth.service';
import type { Env } from '../config/env';
import { AppError, ErrorCode } from '../common/errors';
import { RateLimiter } from '../common/rate-limiter';
import { MetricsService } from '../metrics/metrics.service';
import type { MessageDto } from '../messages/dto/message.dto';
import { MessagesService } from '../messages/messages.service';
import { RoomsService } from '../rooms/rooms.service';
import type { RoomJoinResult } from './contract';
import type { MessageSendPayload, RoomJoinPayload } from './dto';
import { PresenceService } from './presence.service';
import {
  type ChatServer,
  type ChatSocket,
  roomChannel,
  sessionChannel,
  userChannel,
} from './types';

/** Catch-up page size for room.join with `since` (the client repeats while hasMore). */
const CATCH_UP_PAGE = 100;
const LATEST_PAGE = 50;
const MEMBERS_IN_JOIN = 500;

/**
 * What the gateway does beyond calling RoomsService/MessagesService: socket subscriptions,
 * presence, typing, send limits and session lifetime. No SQL here.
 */
@Injectable()
export class ChatService implements OnModuleDestroy, BeforeApplicationShutdown {
  private readonly logger = new Logger('Gateway');
  private server?: ChatServer;
  /** Commands being handled right now (graceful shutdown waits for them). */
  private inFlight = 0;
  private readonly inFlightBySocket = new Map<string, number>();
  private draining = false;
  private readonly typingTimers = new Map<
    string,
    { timer: NodeJS.Timeout; lastBroadcast: number }
  >();
  private readonly expiryTimers = new Map<string, NodeJS.Timeout>();
  /** Limits read once: the send path runs for every message. */
  private readonly limits: {
    maxInFlight: number;
    sendWindowMs: number;
    sendPerSocket: number;
    sendPerUser: number;
  };

  constructor(
    private readonly rooms: RoomsService,
    private readonly access: AccessPolicy,
    private readonly messages: MessagesService,
    private readonly auth: AuthService,
    private readonly presence: PresenceService,
    private readonly limiter: RateLimiter,
    private readonly config: ConfigService<Env, true>,
    private readonly metrics: MetricsService,
  ) {
    this.presence.onOffline = (userId) => void this.announceOffline(userId);
    this.limits = {
      maxInFlight: config.get('WS_MAX_INFLIGHT_PER_SOCKET', { infer: true }),
      sendWindowMs: config.get('WS_SEND_RATE_WINDOW_MS', { infer: true }),
      sendPerSocket: config.get('WS_SEND_RATE_PER_SOCKET', { infer: true }),
      sendPerUser: config.get('WS_SEND_RATE_PER_USER', { infer: true }),
    };
  }

  attach(server: ChatServer): void {
    this.server = server;
  }

  /**
   * Wraps a command so shutdown can wait for it to finish (its ack goes out). One socket may
   * have at most WS_MAX_INFLIGHT_PER_SOCKET commands running: beyond that the ack is
   * RATE_LIMITED, so one client flooding reads cannot starve everyone else.
   */
  async track<T>(socketId: string, work: () => Promise<T>): Promise<T> {
    const mine = this.inFlightBySocket.get(socketId) ?? 0;
    if (mine >= this.limits.maxInFlight) {
      throw new AppError(ErrorCode.RATE_LIMITED, 'Too many commands in flight', undefined, 100);
    }
    this.inFlight++;
    this.inFlightBySocket.set(socketId, mine + 1);
    try {
      return await work();
    } finally {
      this.inFlight--;
      const left = (this.inFlightBySocket.get(socketId) ?? 1) - 1;
      if (left > 0) this.inFlightBySocket.set(socketId, left);
      else this.inFlightBySocket.delete(socketId);
    }
  }

  /**
   * SIGTERM: refuse new connections, tell clients to reconnect elsewhere, let in-flight
   * commands finish (bounded by SHUTDOWN_TIMEOUT_MS), then close this instance's sockets.
   */
  async beforeApplicationShutdown(): Promise<void> {
    if (!this.server) return;
    this.draining = true;
    this.io.local.emit('server.shutdown', { retryAfterMs: 1000 });
    const deadline = Date.now() + this.config.get('SHUTDOWN_TIMEOUT_MS', { infer: true });
    while (this.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (this.inFlight > 0)
      this.logger.warn(`Shutting down with ${this.inFlight} command(s) unfinished`);
    this.io.local.disconnectSockets(true);
  }

  /**
   * Handshake: verified with the same rules as HTTP; nothing is joined before this passes.
   * The socket is subscribed to the user's rooms here, before the client sees `connect`, so a
   * command sent right after connecting already has its room's events flowing.
   */
  async authenticate(socket: ChatSocket): Promise<void> {
    if (this.draining)
      throw new AppError(ErrorCode.UNAVAILABLE, 'Server is shutting down', undefined, 1000);
    const token = tokenOf(socket);
    if (!token) throw AppError.unauthorized('Authentication required');
    const user = await this.auth.verifyAccessToken(token);
    const { expiresAt, ...authUser } = user;
    if (
      this.presence.socketCount(user.id) >=
      this.config.get('WS_MAX_SOCKETS_PER_USER', { infer: true })
    ) {
      throw new AppError(ErrorCode.RATE_LIMITED, 'Too many connections for this user');
    }
    socket.data.user = authUser;
    socket.data.expiresAt = expiresAt;
    const roomIds = await this.rooms.roomIdsOf(user.id);
    await socket.join([
      userChannel(user.id),
      sessionChannel(user.sessionId),
      ...roomIds.map(roomChannel),
    ]);
    // Counted before the client sees `connect`: a tab that closes right after another one
    // opened (on any instance) must find it already registered.
    socket.data.cameOnline = await this.presence.connected(user.id);
  }

  /** After the handshake: announce presence, arm token expiry. */
  connected(socket: ChatSocket): void {
    const { user } = socket.data;
    this.metrics.socketsConnected.inc();
    this.armExpiry(socket);
    const rooms = [...socket.rooms].filter((r) => r.startsWith('room:'));
    if (socket.data.cameOnline && rooms.length) {
      this.io.to(rooms).emit('presence.changed', { userId: user.id, online: true });
    }
  }

  async disconnected(socket: ChatSocket): Promise<void> {
    const user = socket.data.user as AuthUser | undefined;
    if (!user) return; // rejected during the handshake
    this.metrics.socketsConnected.dec();
    clearTimeout(this.expiryTimers.get(socket.id));
    this.expiryTimers.delete(socket.id);
    for (const [key, t] of this.typingTimers) {
      if (key.startsWith(`${socket.id}|`)) {
        clearTimeout(t.timer);
        this.typingTimers.delete(key);
        this.emitTyping(user, key.split('|')[1], false);
      }
    }
    if (await this.presence.disconnected(user.id)) await this.announceOffline(user.id);
  }

  /** socket.rooms is already empty once a socket has disconnected: the rooms come from the DB. */
  private async announceOffline(userId: string): Promise<void> {
    try {
      const channels = (await this.rooms.roomIdsOf(userId)).map(roomChannel);
      if (channels.length) this.io.to(channels).emit('presence.changed', { userId, online: false });
    } catch (err) {
      this.logger.warn(`presence: could not announce ${userId} offline: ${(err as Error).message}`);
    }
  }

  /**
   * Open a room on this socket: joins the membership of a public room if needed, subscribes,
   * then reads (subscribe first, so nothing committed in between is missed; clients de-dupe by id).
   */
  async join(socket: ChatSocket, payload: RoomJoinPayload): Promise<RoomJoinResult> {
    const channel = roomChannel(payload.roomId);
    const subscribed = socket.rooms.has(channel);
    try {
      return await this.open(socket, payload);
    } catch (err) {
      // Access can end between the check and the subscription (a demotion, a removal): whatever
      // failed after subscribing, the socket must not keep receiving the room.
      if (!subscribed) await socket.leave(channel);
      throw err;
    }
  }

  private async open(
    socket: ChatSocket,
    { roomId, since }: RoomJoinPayload,
  ): Promise<RoomJoinResult> {
    const { user } = socket.data;
    const { membership, role } = await this.access.room(user, roomId, 'view');
    if (!membership && role !== 'admin') await this.rooms.join(user, roomId);
    await socket.join(roomChannel(roomId));
    // Checked again once subscribed: a role or membership change that landed in between has
    // already re-evaluated this user's sockets, and must not be undone by this subscription.
    await this.access.room(user, roomId, 'read');
    const [roomDto, members] = await Promise.all([
      this.rooms.load(roomId, user.id),
      this.rooms.members(user, roomId, { limit: MEMBERS_IN_JOIN }),
    ]);
    const online = await this.presence.onlineAmong(members.items.map((m) => m.userId));
    if (since !== undefined) {
      const page = await this.messages.changes(user, roomId, { since, limit: CATCH_UP_PAGE });
      return {
        room: roomDto,
        members: members.items,
        online,
        messages: page.items,
        hasMore: page.hasMore,
        cursor: page.cursor,
      };
    }
    const page = await this.messages.history(user, roomId, { limit: LATEST_PAGE });
    return {
      room: roomDto,
      members: members.items,
      online,
      messages: page.items,
      hasMore: page.hasMoreBefore,
      cursor: Math.max(0, ...page.items.map((m) => m.version)),
    };
  }

  async leave(socket: ChatSocket, roomId: string): Promise<null> {
    await this.rooms.leave(socket.data.user, roomId);
    await socket.leave(roomChannel(roomId));
    return null;
  }

  async send(socket: ChatSocket, dto: MessageSendPayload): Promise<MessageDto> {
    const { user } = socket.data;
    const { sendWindowMs, sendPerSocket, sendPerUser } = this.limits;
    this.rateLimit(`ws:send:socket:${socket.id}`, sendPerSocket, sendWindowMs);
    this.rateLimit(`ws:send:user:${user.id}`, sendPerUser, sendWindowMs);
    const { roomId, ...message } = dto;
    return (await this.messages.send(user, roomId, message)).message;
  }

  private rateLimit(key: string, limit: number, windowMs: number): void {
    const { allowed, retryAfterMs } = this.limiter.hit(key, limit, windowMs);
    if (!allowed)
      throw new AppError(ErrorCode.RATE_LIMITED, 'Sending too fast', undefined, retryAfterMs);
  }

  /**
   * Typing is ephemeral: broadcast to the room's other sockets, throttled, and ended by itself
   * after TYPING_TIMEOUT_MS. Only sockets subscribed to the room (members) may type there.
   */
  typing(socket: ChatSocket, roomId: string, on: boolean): null {
    if (!socket.rooms.has(roomChannel(roomId))) throw AppError.notFound('Room');
    const key = `${socket.id}|${roomId}`;
    const current = this.typingTimers.get(key);
    if (current) clearTimeout(current.timer);
    if (!on) {
      if (current) {
        this.typingTimers.delete(key);
        this.emitTyping(socket.data.user, roomId, false, socket);
      }
      return null;
    }
    const now = Date.now();
    const rebroadcast =
      !current ||
      now - current.lastBroadcast >= this.config.get('TYPING_THROTTLE_MS', { infer: true });
    if (rebroadcast) this.emitTyping(socket.data.user, roomId, true, socket);
    const timer = setTimeout(
      () => {
        this.typingTimers.delete(key);
        this.emitTyping(socket.data.user, roomId, false, socket);
      },
      this.config.get('TYPING_TIMEOUT_MS', { infer: true }),
    );
    this.typingTimers.set(key, {
      timer,
      lastBroadcast: rebroadcast ? now : current.lastBroadcast,
    });
    return null;
  }

  /** `auth.refresh`: a newer access token for the same user keeps the socket past expiry. */
  async refresh(socket: ChatSocket, accessToken: string): Promise<{ expiresAt: number }> {
    const { expiresAt, ...user } = await this.auth.verifyAccessToken(accessToken);
    if (user.id !== socket.data.user.id) throw AppError.forbidden('Token belongs to another user');
    if (user.sessionId !== socket.data.user.sessionId) {
      await socket.leave(sessionChannel(socket.data.user.sessionId));
      await socket.join(sessionChannel(user.sessionId));
    }
    socket.data.user = user;
    socket.data.expiresAt = expiresAt;
    this.armExpiry(socket);
    return { expiresAt };
  }

  /** Tell the socket why, then close it. */
  revoke(target: ChatSocket | string, reason: string): void {
    if (typeof target === 'string') {
      this.io.to(target).emit('session.revoked', { reason });
      this.io.in(target).disconnectSockets(true);
    } else {
      target.emit('session.revoked', { reason });
      target.disconnect(true);
    }
  }

  onModuleDestroy(): void {
    for (const t of this.expiryTimers.values()) clearTimeout(t);
    for (const t of this.typingTimers.values()) clearTimeout(t.timer);
  }

  private armExpiry(socket: ChatSocket): void {
    clearTimeout(this.expiryTimers.get(socket.id));
    const ms = Math.max(0, socket.data.expiresAt - Date.now());
    this.expiryTimers.set(
      socket.id,
      setTimeout(() => this.revoke(socket, 'token_expired'), ms),
    );
  }

  private emitTyping(user: AuthUser, roomId: string, typing: boolean, from?: ChatSocket): void {
    const payload = { roomId, userId: user.id, username: user.username, typing };
    if (from?.connected) from.to(roomChannel(roomId)).emit('typing', payload);
    else this.io.to(roomChannel(roomId)).emit('typing', payload);
  }

  private get io(): ChatServer {
    if (!this.server) throw new Error('Socket.IO server not attached');
    return this.server;
  }
}

/** Token from `auth.token` (preferred), `Authorization: Bearer …`, or `?token=`. */
export function tokenOf(socket: Pick<ChatSocket, 'handshake'>): string | undefined {
  const { auth, headers, query } = socket.handshake;
  const fromAuth = (auth as { token?: unknown } | undefined)?.token;
  if (typeof fromAuth === 'string' && fromAuth) return fromAuth.replace(/^Bearer\s+/i, '');
  const header = headers.authorization;
  if (typeof header === 'string' && /^Bearer\s+\S/i.test(header))
    return header.replace(/^Bearer\s+/i, '');
  const fromQuery = query.token;
  return typeof fromQuery === 'string' && fromQuery ? fromQuery : undefined;
}
