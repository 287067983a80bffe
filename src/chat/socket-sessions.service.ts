import { BeforeApplicationShutdown, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { AuthUser } from '../auth/auth-user';
import { AccessPolicy } from '../access/access.policy';
import { AuthService } from '../auth/auth.service';
import type { Env } from '../config/env';
import { AppError, ErrorCode } from '../common/errors';
import { CommandTracker } from '../limits/command-tracker';
import { MetricsService } from '../metrics/metrics.service';
import { RoomsService } from '../rooms/rooms.service';
import { PresenceService } from './presence.service';
import { TypingService } from './typing.service';
import {
  type ChatServer,
  type ChatSocket,
  ROOM_PREFIX,
  roomChannel,
  sessionChannel,
  userChannel,
} from './types';

/** The longest delay a Node timer takes (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Sockets re-checked at once by `recheckAll` (each check is three short queries). */
const RECHECK_CONCURRENCY = 8;

/**
 * A socket's session from handshake to disconnect: authentication, the per-user socket cap,
 * presence announcements, `auth.refresh`, token expiry, revocation, and graceful shutdown.
 */
@Injectable()
export class SocketSessionsService implements OnModuleDestroy, BeforeApplicationShutdown {
  private readonly logger = new Logger('Gateway');
  private server?: ChatServer;
  private draining = false;
  private readonly expiryTimers = new Map<string, NodeJS.Timeout>();
  private readonly maxSockets: number;
  private rechecking?: Promise<void>;
  private recheckAgain = false;

  constructor(
    private readonly auth: AuthService,
    private readonly access: AccessPolicy,
    private readonly rooms: RoomsService,
    private readonly presence: PresenceService,
    private readonly typing: TypingService,
    private readonly commands: CommandTracker,
    private readonly config: ConfigService<Env, true>,
    private readonly metrics: MetricsService,
  ) {
    this.presence.onOffline = (userId) => void this.announceOffline(userId);
    this.maxSockets = config.get('WS_MAX_SOCKETS_PER_USER', { infer: true });
  }

  attach(server: ChatServer): void {
    this.server = server;
  }

  /**
   * Handshake: verified with the same rules as HTTP; nothing is joined before this passes.
   * The user's socket slot is reserved right after the token is verified, before any other
   * async work, so concurrent handshakes cannot all pass the cap. The socket is subscribed to
   * the user's rooms here, before the client sees `connect`, so a command sent right after
   * connecting already has its room's events flowing.
   */
  async authenticate(socket: ChatSocket): Promise<void> {
    if (this.draining)
      throw new AppError(ErrorCode.UNAVAILABLE, 'Server is shutting down', undefined, 1000);
    const token = tokenOf(socket);
    if (!token) throw AppError.unauthorized('Authentication required');
    const { expiresAt, ...user } = await this.auth.verifyAccessToken(token);
    if (transportClosed(socket)) throw gone();
    const slot = await this.presence.reserve(user.id, this.maxSockets);
    if (!slot) throw new AppError(ErrorCode.RATE_LIMITED, 'Too many connections for this user');
    socket.data.slotHeld = true;
    // A client that goes away mid-handshake never reaches `connection` nor `disconnect`
    // (Socket.IO drops a socket whose transport closed before the middleware finished): the slot
    // is given back on the transport's close, or here at once when that close came while the
    // slot was being reserved (a listener attached now would never hear it).
    if (transportClosed(socket)) {
      await this.releaseSlot(socket, user.id);
      throw gone();
    }
    socket.conn.once('close', () => {
      if (!socket.data.live) void this.releaseSlot(socket, user.id);
    });
    try {
      // Subscribe to revocations and membership changes first, then read, then check again:
      // a disable, logout or removal that commits while the handshake runs is never missed.
      await socket.join([userChannel(user.id), sessionChannel(user.sessionId)]);
      const roomIds = await this.rooms.roomIdsOf(user.id);
      await socket.join(roomIds.map(roomChannel));
      const [, still] = await Promise.all([
        this.auth.verifyAccessToken(token),
        this.rooms.roomIdsOf(user.id).then((ids) => new Set(ids)),
      ]);
      for (const id of roomIds) if (!still.has(id)) await socket.leave(roomChannel(id));
    } catch (err) {
      await this.releaseSlot(socket, user.id);
      throw err;
    }
    socket.data.user = user;
    socket.data.token = token;
    socket.data.expiresAt = expiresAt;
    socket.data.cameOnline = slot.first;
  }

  /** After the handshake: announce presence, arm token expiry. */
  connected(socket: ChatSocket): void {
    const { user } = socket.data;
    socket.data.live = true;
    this.metrics.socketsConnected.inc();
    this.armExpiry(socket);
    const rooms = [...socket.rooms].filter((r) => r.startsWith('room:'));
    if (socket.data.cameOnline && rooms.length) {
      this.io.to(rooms).emit('presence.changed', { userId: user.id, online: true });
    }
    void this.recheck(socket);
  }

  /**
   * The handshake's last look. While the middleware runs, the socket is not yet one of the
   * namespace's sockets, so a revocation or a membership change emitted then (disconnectSockets,
   * socketsLeave, socketsJoin) passes it by. Now that it is reachable, the session and its rooms
   * are read once more: whatever changed before this point is applied here, whatever changes
   * after it reaches the socket through its channels. Rooms it may no longer read are left;
   * rooms it became a member of are joined, then checked again (a removal committing between
   * the read and the join would otherwise leave it subscribed).
   */
  private async recheck(socket: ChatSocket): Promise<void> {
    const { user } = socket.data;
    const subscribed = [...socket.rooms].filter((r) => r.startsWith(ROOM_PREFIX));
    try {
      const [session, readable, memberOf] = await Promise.all([
        // The token it holds now (refreshed ones included); only a refusal ends the socket,
        // a database error is thrown on (kept, see below).
        this.auth.verifyAccessToken(socket.data.token).then(
          () => true,
          (err: unknown) => {
            const refused = [ErrorCode.UNAUTHORIZED, ErrorCode.TOKEN_EXPIRED];
            if (err instanceof AppError && refused.includes(err.code)) return false;
            throw err;
          },
        ),
        this.access.readableRooms(
          user.id,
          subscribed.map((r) => r.slice(ROOM_PREFIX.length)),
        ),
        this.rooms.roomIdsOf(user.id),
      ]);
      if (!session) return this.revoke(socket, 'session_ended');
      const gone = subscribed.filter((r) => !readable.has(r.slice(ROOM_PREFIX.length)));
      for (const r of gone) await socket.leave(r);
      const missing = memberOf.filter((id) => !socket.rooms.has(roomChannel(id)));
      if (!missing.length) return;
      await socket.join(missing.map(roomChannel));
      const still = await this.access.readableRooms(user.id, missing);
      for (const id of missing) if (!still.has(id)) await socket.leave(roomChannel(id));
    } catch (err) {
      // The database is unreachable: every command asks the access policy anyway, and fails
      // while it is down; the socket is not dropped for it.
      this.logger.warn({ msg: `Re-checking socket ${socket.id} failed`, err });
    }
  }

  /**
   * Every socket of this instance checked again (as at its handshake), a few at a time: after
   * the adapter's Redis connection came back, since what other instances published while it was
   * away (a ban's or a kick's socketsLeave, a session's revocation, a join) never arrives.
   * A call while one runs makes it run once more.
   */
  recheckAll(): Promise<void> {
    if (this.rechecking) {
      this.recheckAgain = true;
      return this.rechecking;
    }
    this.rechecking = (async () => {
      do {
        this.recheckAgain = false;
        const sockets = [...this.io.of('/').sockets.values()].filter((s) => s.data.live);
        let next = 0;
        const worker = async () => {
          while (next < sockets.length) {
            const socket = sockets[next++];
            if (socket.connected) await this.recheck(socket);
          }
        };
        await Promise.all(Array.from({ length: RECHECK_CONCURRENCY }, worker));
        this.logger.log(`Re-checked ${sockets.length} socket(s) after Redis came back`);
      } while (this.recheckAgain);
    })().finally(() => (this.rechecking = undefined));
    return this.rechecking;
  }

  async disconnected(socket: ChatSocket): Promise<void> {
    const user = socket.data.user as AuthUser | undefined;
    if (!user || !socket.data.live) return; // rejected during the handshake
    this.metrics.socketsConnected.dec();
    clearTimeout(this.expiryTimers.get(socket.id));
    this.expiryTimers.delete(socket.id);
    this.typing.socketGone(socket.id, user);
    if (await this.releaseSlot(socket, user.id)) await this.announceOffline(user.id);
  }

  /** Gives the socket's slot back once; true when it was the user's last socket anywhere. */
  private releaseSlot(socket: ChatSocket, userId: string): Promise<boolean> {
    if (!socket.data.slotHeld) return Promise.resolve(false);
    socket.data.slotHeld = false;
    return this.presence.release(userId);
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
   * `auth.refresh`: a newer access token for the same user keeps the socket past expiry. A token
   * of another session (the client logged in again) moves the socket to that session as the
   * handshake does: subscribed to its revocations first, then checked, so a logout committing
   * meanwhile is never missed; the old session's channel is left only once the new one passed
   * (on a refusal the socket stays as it was). A socket's refreshes run one after another: two
   * at once, for two sessions, would each leave the session they both started from and leave
   * the socket subscribed to both new ones, whichever it ends on.
   */
  refresh(socket: ChatSocket, accessToken: string): Promise<{ expiresAt: number }> {
    const run = (socket.data.refreshing ?? Promise.resolve())
      .catch(() => undefined)
      .then(() => this.refreshNow(socket, accessToken));
    socket.data.refreshing = run;
    return run;
  }

  private async refreshNow(
    socket: ChatSocket,
    accessToken: string,
  ): Promise<{ expiresAt: number }> {
    if (!socket.connected) throw new AppError(ErrorCode.UNAVAILABLE, 'Connection closed');
    const claims = await this.auth.accessClaims(accessToken);
    if (claims.sub !== socket.data.user.id)
      throw AppError.forbidden('Token belongs to another user');
    const old = socket.data.user.sessionId;
    const moved = claims.sid !== old;
    if (moved) await socket.join(sessionChannel(claims.sid));
    let user: AuthUser;
    let expiresAt: number;
    try {
      ({ user, until: expiresAt } = await this.auth.authenticateUntil(claims));
    } catch (err) {
      if (moved) await socket.leave(sessionChannel(claims.sid));
      throw err;
    }
    if (moved) await socket.leave(sessionChannel(old));
    socket.data.user = user;
    socket.data.token = accessToken;
    socket.data.expiresAt = expiresAt;
    this.armExpiry(socket);
    return { expiresAt };
  }

  /** Tell the socket (or every socket in a channel, on any instance) why, then close it. */
  revoke(target: ChatSocket | string, reason: string): void {
    if (typeof target === 'string') {
      this.io.to(target).emit('session.revoked', { reason });
      this.io.in(target).disconnectSockets(true);
    } else {
      target.emit('session.revoked', { reason });
      target.disconnect(true);
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
    if (!(await this.commands.drain(deadline)))
      this.logger.warn(`Shutting down with ${this.commands.running} command(s) unfinished`);
    // A client slow to read (a burst just sent to it) may still hold the notice and the last
    // acks in engine.io's buffer or its TCP socket's: closing discards the first and exiting
    // the process the second. Handed to the kernel, they are delivered after exit too.
    while (Date.now() < deadline && [...this.io.of('/').sockets.values()].some(unflushed))
      await new Promise((r) => setTimeout(r, 20));
    this.io.local.disconnectSockets(true);
  }

  onModuleDestroy(): void {
    for (const t of this.expiryTimers.values()) clearTimeout(t);
  }

  /**
   * Closes the socket when its token expires or its session ends (`token_expired`), unless
   * `auth.refresh` moves that first. Not for a socket already gone (a refresh that finished
   * after its disconnect would leave a timer holding it).
   */
  private armExpiry(socket: ChatSocket): void {
    clearTimeout(this.expiryTimers.get(socket.id));
    if (!socket.connected) return void this.expiryTimers.delete(socket.id);
    // Node fires a delay past 2^31-1 ms at once, and a timer may fire a little early (it counts
    // from the event loop's cached time): either way it is armed again for what is left.
    const ms = Math.min(MAX_TIMER_MS, Math.max(0, socket.data.expiresAt - Date.now()));
    this.expiryTimers.set(
      socket.id,
      setTimeout(() => {
        if (Date.now() < socket.data.expiresAt) return this.armExpiry(socket);
        this.expiryTimers.delete(socket.id);
        this.revoke(socket, 'token_expired');
      }, ms),
    );
  }

  private get io(): ChatServer {
    if (!this.server) throw new Error('Socket.IO server not attached');
    return this.server;
  }
}

/** Whether the socket's transport has closed (the client went away; engine.io's state). */
function transportClosed(socket: ChatSocket): boolean {
  return socket.conn.readyState === 'closed';
}

/** The handshake of a client that already went away (nobody reads it: it ends the middleware). */
function gone(): AppError {
  return new AppError(ErrorCode.UNAVAILABLE, 'Connection closed during the handshake');
}

/** Whether a socket still holds packets not yet handed to the kernel (engine.io internals). */
function unflushed(socket: ChatSocket): boolean {
  const conn = socket.conn as unknown as {
    writeBuffer?: unknown[];
    transport?: { socket?: { _socket?: { writableLength: number; destroyed: boolean } } };
  };
  const raw = conn.transport?.socket?._socket;
  return !!conn.writeBuffer?.length || (!!raw && !raw.destroyed && raw.writableLength > 0);
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
