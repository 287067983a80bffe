/**
 * ParlorClient: a thin, typed wrapper over socket.io-client for Parlor's socket contract.
 *
 * Everything it knows about the wire comes from `src/chat/contract.ts` and the plain shapes of
 * `src/common/wire.ts` (type-only imports of decorator-free files: the package build compiles
 * them into its declarations, and a browser bundle pulls in no server code). What it adds on
 * top of a bare socket:
 * - the access token is renewed through a hook before it expires (`auth.refresh` on the live
 *   socket) and whenever the server says it expired;
 * - `send` picks a clientMsgId and retries until the server acknowledges (a retry reuses the id,
 *   and the server's idempotent send returns the first message);
 * - `join` remembers the highest change version seen per room and, after every reconnect,
 *   re-joins with `since`, paging until `hasMore` is false; the catch-up reaches the same
 *   handlers as live events, and a change is delivered once even if it arrives both ways.
 *
 * Works in Node and in browsers. Published as the package `@parlor/client` (client/package.json;
 * `npm run client:pack` builds the tarball; docs/client.md).
 */
import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import type {
  Ack,
  AckError,
  ClientToServer,
  CommandName,
  Commands,
  RoomJoinResult,
  ServerEvents,
  ServerToClient,
} from '../src/chat/contract.js';
import type { MessageDto } from '../src/common/wire.js';

export type {
  Ack,
  AckError,
  CommandName,
  Commands,
  RoomJoinResult,
  ServerEventName,
  ServerEvents,
} from '../src/chat/contract.js';
export type * from '../src/common/wire.js';
/** The server's error codes (`ParlorError.code` also has the client's own, e.g. TIMEOUT). */
export { ErrorCode } from '../src/common/wire.js';

export type ParlorSocket = Socket<ServerToClient, ClientToServer>;

/** Events the client itself emits, next to the server's. */
export interface ClientEvents {
  /** The socket connected, dropped (it will reconnect by itself) or was closed for good. */
  connection: { state: 'connected' | 'disconnected' | 'closed'; reason?: string };
  /** A joined room was re-joined after a reconnect; catch-up messages have been delivered. */
  'room.resynced': RoomJoinResult;
}
export type EventMap = ServerEvents & ClientEvents;

export interface ParlorClientOptions {
  /** Server origin, e.g. `http://localhost:3000` (a browser page on the server: `location.origin`). */
  url: string;
  /** The access token to connect with. */
  token: string;
  /**
   * Returns a fresh access token (typically POST /api/v1/auth/refresh). Called shortly before
   * the current one expires, and when the server reports it expired. Without it, the socket
   * closes when the token expires.
   */
  refreshToken?: () => Promise<string>;
  /** Renew this long before expiry (default 30 s). */
  refreshBeforeMs?: number;
  /** How long to wait for an acknowledgement (default 10 s). */
  ackTimeoutMs?: number;
  /** Backoff between send retries: doubled per attempt up to maxDelayMs, with jitter. */
  retry?: { initialDelayMs?: number; maxDelayMs?: number };
  /** Passed through to socket.io-client's `io()`. */
  socket?: Partial<ManagerOptions & SocketOptions>;
}

export interface SendOptions {
  replyToId?: number;
  /** Uploads to send with the message (POST /api/v1/rooms/:id/attachments answers their ids). */
  attachmentIds?: string[];
  /** Defaults to a random UUID; pass your own to make a send idempotent across page reloads. */
  clientMsgId?: string;
  /** Give up (reject) after this many attempts (default: no limit). */
  maxAttempts?: number;
  signal?: AbortSignal;
}

/** A failed command: `code` is the server's error code, or DISCONNECTED / TIMEOUT / CLOSED. */
export class ParlorError extends Error {
  readonly code: `${AckError['code']}` | 'DISCONNECTED' | 'TIMEOUT' | 'CLOSED' | 'ABORTED';
  readonly retryAfterMs?: number;
  readonly details?: unknown;

  constructor(error: {
    code: ParlorError['code'];
    message: string;
    retryAfterMs?: number;
    details?: unknown;
  }) {
    super(error.message);
    this.name = 'ParlorError';
    this.code = error.code;
    this.retryAfterMs = error.retryAfterMs;
    this.details = error.details;
  }

  /** Worth retrying the same command: the connection or the server may recover. */
  get transient(): boolean {
    return [
      'DISCONNECTED',
      'TIMEOUT',
      'RATE_LIMITED',
      'UNAVAILABLE',
      'INTERNAL',
      'TOKEN_EXPIRED',
    ].includes(this.code);
  }
}

const MESSAGE_EVENTS = ['message.created', 'message.updated', 'message.deleted'] as const;
type MessageEvent = (typeof MESSAGE_EVENTS)[number];
/** How many recently delivered change versions are remembered for de-duplication. */
const SEEN_LIMIT = 5000;

interface RoomState {
  /** The highest change version delivered for this room: `since` on the next re-join. */
  cursor: number;
  /** The highest message id seen: catch-up items above it are new messages. */
  maxId: number;
  /** Catching up after a reconnect (until it succeeds); `running`: a request is under way. */
  syncing: boolean;
  running: boolean;
  /** What live events brought while syncing, applied once the catch-up is complete. */
  live: { cursor: number; maxId: number };
}

type Handler<E extends keyof EventMap> = (payload: EventMap[E]) => void;

export class ParlorClient {
  readonly socket: ParlorSocket;
  private token: string;
  private readonly opts: ParlorClientOptions;
  private readonly handlers = new Map<keyof EventMap, Set<(payload: never) => void>>();
  private readonly rooms = new Map<string, RoomState>();
  private readonly seen = new Set<number>();
  private readonly inFlight = new Set<(err: ParlorError) => void>();
  private refreshTimer?: ReturnType<typeof setTimeout>;
  private refreshing?: Promise<string>;
  private revokedReason?: string;
  private shutdownRetryMs?: number;
  private everConnected = false;
  private closed = false;

  constructor(opts: ParlorClientOptions) {
    this.opts = opts;
    this.token = opts.token;
    this.socket = io(opts.url, {
      path: '/socket.io',
      transports: ['websocket', 'polling'],
      // Called before every (re)connection: hand over a token that is not about to expire.
      auth: (cb) => {
        this.freshToken().then(
          (token) => cb({ token }),
          () => cb({ token: this.token }),
        );
      },
      ...opts.socket,
    });
    this.socket.on('connect', () => this.onConnect());
    this.socket.on('disconnect', (reason) => this.onDisconnect(reason));
    this.socket.on('connect_error', (err) => this.onConnectError(err));
    this.socket.on('session.revoked', ({ reason }) => (this.revokedReason = reason));
    this.socket.on('server.shutdown', ({ retryAfterMs }) => (this.shutdownRetryMs = retryAfterMs));
    for (const name of MESSAGE_EVENTS) {
      this.socket.on(name, (m: MessageDto) => this.deliverChange(name, m));
    }
    this.socket.on('reaction.updated', (e) => {
      if (this.track(e.roomId, e.version)) this.emitLocal('reaction.updated', e);
    });
  }

  /** Connects and resolves once the server accepted the handshake. */
  static connect(opts: ParlorClientOptions): Promise<ParlorClient> {
    const client = new ParlorClient(opts);
    return new Promise((resolve, reject) => {
      const off = client.on('connection', ({ state, reason }) => {
        if (state === 'connected') {
          off();
          resolve(client);
        } else if (state === 'closed') {
          off();
          client.close();
          reject(
            new ParlorError({ code: 'UNAUTHORIZED', message: reason ?? 'connection refused' }),
          );
        }
      });
    });
  }

  get connected(): boolean {
    return this.socket.connected;
  }

  /** The change cursor kept for a joined room (what the next re-join passes as `since`). */
  cursor(roomId: string): number | undefined {
    return this.rooms.get(roomId)?.cursor;
  }

  /**
   * Subscribes to a server event (or a client event: `connection`, `room.resynced`). Message
   * events include the catch-up after a reconnect. Returns the unsubscribe function.
   */
  on<E extends keyof EventMap>(event: E, handler: Handler<E>): () => void {
    let set = this.handlers.get(event);
    if (!set) {
      set = new Set();
      this.handlers.set(event, set);
      const forwarded =
        !(MESSAGE_EVENTS as readonly string[]).includes(event) &&
        event !== 'reaction.updated' &&
        event !== 'connection' &&
        event !== 'room.resynced';
      if (forwarded) {
        (this.socket.on as (e: string, h: (p: unknown) => void) => void)(event, (p) =>
          this.emitLocal(event, p as EventMap[E]),
        );
      }
    }
    set.add(handler);
    return () => set.delete(handler);
  }

  /**
   * Sends one command and resolves with its ack data; rejects with a ParlorError for an error
   * ack, a timeout, or a disconnect before the ack (the command may or may not have run).
   */
  async request<K extends CommandName>(
    name: K,
    payload: Commands[K][0],
    timeoutMs = this.opts.ackTimeoutMs ?? 10_000,
  ): Promise<Commands[K][1]> {
    await this.whenConnected();
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err: ParlorError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.inFlight.delete(fail);
        reject(err);
      };
      const timer = setTimeout(
        () =>
          fail(
            new ParlorError({ code: 'TIMEOUT', message: `no ack for ${name} in ${timeoutMs} ms` }),
          ),
        timeoutMs,
      );
      this.inFlight.add(fail);
      (this.socket.emit as (n: string, p: unknown, cb: (res: Ack<Commands[K][1]>) => void) => void)(
        name,
        payload,
        (res) => {
          if (settled) return;
          if (!res.ok) return fail(new ParlorError(res.error));
          settled = true;
          clearTimeout(timer);
          this.inFlight.delete(fail);
          resolve(res.data);
        },
      );
    });
  }

  /**
   * Sends a message and resolves with the stored message once the server acknowledged it.
   * Lost acks, disconnects and transient errors are retried with backoff under the same
   * clientMsgId (RATE_LIMITED waits retryAfterMs); permanent errors (VALIDATION_FAILED,
   * NOT_FOUND, FORBIDDEN, …) reject at once.
   */
  async send(roomId: string, content: string, opts: SendOptions = {}): Promise<MessageDto> {
    const clientMsgId = opts.clientMsgId ?? globalThis.crypto.randomUUID();
    const payload = {
      roomId,
      clientMsgId,
      content,
      ...(opts.replyToId ? { replyToId: opts.replyToId } : {}),
      ...(opts.attachmentIds?.length ? { attachmentIds: opts.attachmentIds } : {}),
    };
    const { initialDelayMs = 250, maxDelayMs = 5000 } = this.opts.retry ?? {};
    for (let attempt = 1; ; attempt++) {
      if (opts.signal?.aborted) throw new ParlorError({ code: 'ABORTED', message: 'send aborted' });
      try {
        const message = await this.request('message.send', payload);
        this.track(message.roomId, message.version, message.id);
        return message;
      } catch (e) {
        const err =
          e instanceof ParlorError ? e : new ParlorError({ code: 'INTERNAL', message: String(e) });
        if (!err.transient || attempt >= (opts.maxAttempts ?? Infinity) || this.closed) throw err;
        const backoff =
          Math.min(maxDelayMs, initialDelayMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
        await sleep(err.code === 'RATE_LIMITED' && err.retryAfterMs ? err.retryAfterMs : backoff);
      }
    }
  }

  /**
   * Opens a room: the latest page of messages, members and who is online. From then on the
   * client keeps the room's change cursor and catches up with `since` after every reconnect.
   */
  async join(roomId: string): Promise<RoomJoinResult> {
    const result = await this.request('room.join', { roomId });
    const state: RoomState = {
      cursor: result.cursor,
      maxId: 0,
      syncing: false,
      running: false,
      live: { cursor: 0, maxId: 0 },
    };
    for (const m of result.messages) {
      state.maxId = Math.max(state.maxId, m.id);
      this.remember(m.version);
    }
    this.rooms.set(roomId, state);
    return result;
  }

  /** Leaves the room (membership too) and forgets its cursor. */
  async leave(roomId: string): Promise<void> {
    await this.request('room.leave', { roomId });
    this.rooms.delete(roomId);
  }

  /** Stops tracking a room without leaving it (e.g. the view closed). */
  forget(roomId: string): void {
    this.rooms.delete(roomId);
  }

  /** Renews the access token now (through the hook) and hands it to the live socket. */
  refresh(): Promise<string> {
    const hook = this.opts.refreshToken;
    if (!hook) return Promise.reject(new Error('no refreshToken hook'));
    this.refreshing ??= (async () => {
      const token = await hook();
      this.token = token;
      if (this.socket.connected) await this.request('auth.refresh', { accessToken: token });
      this.scheduleRefresh();
      return token;
    })().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.refreshTimer);
    this.socket.disconnect();
    this.failInFlight('CLOSED');
    this.emitLocal('connection', { state: 'closed', reason: 'closed by the client' });
  }

  // --- internals ------------------------------------------------------------------------

  private onConnect(): void {
    const reconnect = this.everConnected;
    this.everConnected = true;
    this.revokedReason = undefined;
    this.shutdownRetryMs = undefined;
    this.scheduleRefresh();
    this.emitLocal('connection', { state: 'connected' });
    if (reconnect) for (const roomId of this.rooms.keys()) void this.resync(roomId);
  }

  private onDisconnect(reason: string): void {
    clearTimeout(this.refreshTimer);
    this.failInFlight('DISCONNECTED');
    if (this.closed) return;
    if (reason !== 'io server disconnect') {
      this.emitLocal('connection', { state: 'disconnected', reason }); // socket.io reconnects
      return;
    }
    // The server closed the socket: socket.io does not reconnect by itself.
    if (this.shutdownRetryMs !== undefined) {
      const wait = this.shutdownRetryMs + Math.random() * 1000;
      this.emitLocal('connection', { state: 'disconnected', reason: 'server shutdown' });
      setTimeout(() => this.reconnect(), wait);
    } else if (this.revokedReason === 'token_expired' && this.opts.refreshToken) {
      this.emitLocal('connection', { state: 'disconnected', reason: 'token expired' });
      this.refresh().then(
        () => this.reconnect(),
        (e: unknown) => this.emitLocal('connection', { state: 'closed', reason: String(e) }),
      );
    } else {
      this.emitLocal('connection', { state: 'closed', reason: this.revokedReason ?? reason });
    }
  }

  private onConnectError(err: Error & { data?: { code?: string } }): void {
    if (this.socket.active || this.closed) return; // a network error: socket.io keeps retrying
    const code = err.data?.code;
    if (code === 'TOKEN_EXPIRED' && this.opts.refreshToken) {
      this.refresh().then(
        () => this.reconnect(),
        (e: unknown) => this.emitLocal('connection', { state: 'closed', reason: String(e) }),
      );
    } else if (code === 'RATE_LIMITED' || code === 'UNAVAILABLE') {
      setTimeout(() => this.reconnect(), 1000 + Math.random() * 2000);
    } else {
      this.emitLocal('connection', { state: 'closed', reason: err.message });
    }
  }

  private reconnect(): void {
    if (!this.closed && !this.socket.connected) this.socket.connect();
  }

  /** Re-joins with `since`, paging while hasMore; catch-up goes to the message handlers. */
  private async resync(roomId: string, attempt = 0): Promise<void> {
    const state = this.rooms.get(roomId);
    if (!state || state.running) return;
    state.running = true;
    state.syncing = true; // until a catch-up completes, live events must not move the cursor
    try {
      for (let page = 0; ; page++) {
        const result = await this.request('room.join', { roomId, since: state.cursor });
        for (const m of result.messages) {
          const kind: MessageEvent = m.deletedAt
            ? 'message.deleted'
            : m.id > state.maxId
              ? 'message.created'
              : 'message.updated';
          this.deliverChange(kind, m, true);
        }
        // Progress survives a drop in the middle of the catch-up.
        state.cursor = Math.max(state.cursor, result.cursor);
        if (page === 0) this.emitLocal('room.resynced', result);
        if (!result.hasMore) break;
      }
      state.syncing = false;
      state.cursor = Math.max(state.cursor, state.live.cursor);
      state.maxId = Math.max(state.maxId, state.live.maxId);
    } catch (e) {
      // Lost access (room deleted, removed): stop tracking. Otherwise try again shortly; a
      // reconnect in the meantime continues from the cursor as well.
      if (e instanceof ParlorError && !e.transient) this.rooms.delete(roomId);
      else if (!this.closed) {
        const retry = () => void this.resync(roomId, attempt + 1);
        setTimeout(retry, Math.min(5000, 250 * 2 ** attempt));
      }
    } finally {
      state.running = false;
    }
  }

  private deliverChange(kind: MessageEvent, m: MessageDto, fromCatchUp = false): void {
    const fresh = this.track(m.roomId, m.version, m.id, fromCatchUp);
    if (fresh) this.emitLocal(kind, m);
  }

  /** Records a change; false if this version was already delivered. */
  private track(roomId: string, version: number, id = 0, fromCatchUp = false): boolean {
    const state = this.rooms.get(roomId);
    if (state) {
      // During a catch-up, live events are set aside: they must not hide a gap before them.
      const into = state.syncing && !fromCatchUp ? state.live : state;
      into.maxId = Math.max(into.maxId, id);
      into.cursor = Math.max(into.cursor, version);
    }
    if (this.seen.has(version)) return false;
    this.remember(version);
    return true;
  }

  private remember(version: number): void {
    this.seen.add(version);
    if (this.seen.size > SEEN_LIMIT) this.seen.delete(this.seen.values().next().value as number);
  }

  private emitLocal<E extends keyof EventMap>(event: E, payload: EventMap[E]): void {
    for (const h of this.handlers.get(event) ?? []) {
      try {
        (h as Handler<E>)(payload);
      } catch (e) {
        console.error(`parlor client: a ${event} handler threw`, e);
      }
    }
  }

  private failInFlight(code: 'DISCONNECTED' | 'CLOSED'): void {
    for (const fail of [...this.inFlight])
      fail(
        new ParlorError({
          code,
          message: code === 'CLOSED' ? 'client closed' : 'disconnected before the ack',
        }),
      );
  }

  private whenConnected(): Promise<void> {
    if (this.closed)
      return Promise.reject(new ParlorError({ code: 'CLOSED', message: 'client closed' }));
    if (this.socket.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const off = this.on('connection', ({ state, reason }) => {
        if (state === 'connected') {
          off();
          resolve();
        } else if (state === 'closed') {
          off();
          reject(new ParlorError({ code: 'CLOSED', message: reason ?? 'connection closed' }));
        }
      });
    });
  }

  /** The current token, renewed first if it expires within refreshBeforeMs. */
  private async freshToken(): Promise<string> {
    const expiresAt = tokenExpiry(this.token);
    const margin = this.opts.refreshBeforeMs ?? 30_000;
    if (this.opts.refreshToken && expiresAt !== undefined && expiresAt - Date.now() < margin) {
      this.token = await this.opts.refreshToken();
    }
    return this.token;
  }

  private scheduleRefresh(): void {
    clearTimeout(this.refreshTimer);
    const expiresAt = tokenExpiry(this.token);
    if (!this.opts.refreshToken || expiresAt === undefined || this.closed) return;
    const margin = this.opts.refreshBeforeMs ?? 30_000;
    const delay = Math.max(1000, expiresAt - margin - Date.now());
    this.refreshTimer = setTimeout(() => {
      this.refresh().catch((e: unknown) =>
        this.emitLocal('connection', {
          state: 'closed',
          reason: `token refresh failed: ${String(e)}`,
        }),
      );
    }, delay);
  }
}

/** `exp` of a JWT in ms since the epoch (undefined if it has none or is not a JWT). */
export function tokenExpiry(token: string): number | undefined {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(part)) as { exp?: number };
    return typeof claims.exp === 'number' ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
