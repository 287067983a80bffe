import { Client } from 'pg';
import { io, type Socket } from 'socket.io-client';
import type { Ack, ClientToServer, ServerToClient } from '../../src/chat/contract';
import type { MessageDto } from '../../src/messages/dto/message.dto';
import { sleep } from './infra';

/** What the drills drive: real socket.io clients that send steadily and retry until acknowledged. */
export type ClientSocket = Socket<ServerToClient, ClientToServer>;

export async function api<T = unknown>(
  base: string,
  method: string,
  path: string,
  body?: object,
  token?: string,
): Promise<{ status: number; body: T; ms: number }> {
  const t0 = Date.now();
  const res = await fetch(base + path, {
    method,
    headers: {
      ...(body ? { 'content-type': 'application/json' } : {}),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON (a proxy page, say): keep the text
  }
  return { status: res.status, body: parsed as T, ms: Date.now() - t0 };
}

export interface DrillUser {
  id: string;
  username: string;
  accessToken: string;
}

export async function signup(base: string, tag: string, i: number): Promise<DrillUser> {
  const username = `${tag}_${i}_${Math.random().toString(36).slice(2, 8)}`;
  const res = await api<{ accessToken: string; user: { id: string } }>(
    base,
    'POST',
    '/api/v1/auth/signup',
    { username, email: `${username}@example.com`, password: 'drill-password-1' },
  );
  if (res.status !== 201) throw new Error(`signup: ${res.status} ${JSON.stringify(res.body)}`);
  return { id: res.body.user.id, username, accessToken: res.body.accessToken };
}

export async function login(base: string, username: string, password: string): Promise<string> {
  const res = await api<{ accessToken: string }>(base, 'POST', '/api/v1/auth/login', {
    username,
    password,
  });
  if (res.status !== 200) throw new Error(`login: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.accessToken;
}

export async function publicRoom(base: string, adminToken: string, members: DrillUser[]) {
  const res = await api<{ id: string }>(
    base,
    'POST',
    '/api/v1/rooms',
    { name: `drill-${Date.now()}-${Math.random().toString(36).slice(2, 6)}`, visibility: 'public' },
    adminToken,
  );
  if (res.status !== 201) throw new Error(`room: ${res.status} ${JSON.stringify(res.body)}`);
  for (const m of members) {
    const j = await api(
      base,
      'POST',
      `/api/v1/rooms/${res.body.id}/join`,
      undefined,
      m.accessToken,
    );
    if (j.status !== 200) throw new Error(`join: ${j.status}`);
  }
  return res.body.id;
}

/** Connects; resolves with the socket, or rejects with the connect_error code. */
export function connect(url: string, token: string, timeoutMs = 10_000): Promise<ClientSocket> {
  const socket: ClientSocket = io(url, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    auth: { token },
    timeout: timeoutMs,
  });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (err: Error & { data?: { code?: string } }) => {
      socket.close();
      reject(Object.assign(new Error(err.data?.code ?? err.message), { code: err.data?.code }));
    });
  });
}

/** One emit with an ack, bounded: 'timeout' when no answer within ms, 'disconnected' when cut. */
export function sendOnce(
  socket: ClientSocket,
  payload: { roomId: string; clientMsgId: string; content: string },
  ms: number,
): Promise<Ack<MessageDto> | 'timeout' | 'disconnected'> {
  return new Promise((resolve) => {
    if (!socket.connected) return resolve('disconnected');
    const done = (r: Ack<MessageDto> | 'timeout' | 'disconnected') => {
      clearTimeout(timer);
      socket.off('disconnect', onDisconnect);
      resolve(r);
    };
    const onDisconnect = () => done('disconnected');
    const timer = setTimeout(() => done('timeout'), ms);
    socket.once('disconnect', onDisconnect);
    socket.emit('message.send', payload, (res) => done(res));
  });
}

/** Every attempt and outcome, for the verdict. */
export class Ledger {
  readonly messages = new Map<string, { attempts: number; ackedId?: number; ackedAt?: number }>();
  readonly errors = new Map<string, number>();
  /** Latency of every error ack (ms): "fails fast". */
  readonly errorAckMs: number[] = [];
  timeouts = 0;
  disconnects = 0;
  reconnects = 0;
  connectErrors = new Map<string, number>();

  count(map: Map<string, number>, key: string): void {
    map.set(key, (map.get(key) ?? 0) + 1);
  }

  get sent(): number {
    return this.messages.size;
  }
  get acknowledged(): number {
    return [...this.messages.values()].filter((m) => m.ackedId !== undefined).length;
  }
  get retried(): number {
    return [...this.messages.values()].filter((m) => m.attempts > 1).length;
  }
  get attempts(): number {
    return [...this.messages.values()].reduce((n, m) => n + m.attempts, 0);
  }
}

export interface SenderOptions {
  /** Where to (re)connect: tried in order, the first that accepts wins. */
  urls: () => string[];
  token: string;
  roomId: string;
  tag: string;
  intervalMs: number;
  ackTimeoutMs: number;
  ledger: Ledger;
  /** Messages in flight at once (default 1). */
  window?: number;
}

/**
 * A client that sends one message every intervalMs with a fresh clientMsgId and retries each
 * one (same clientMsgId) until it is acknowledged, reconnecting when its socket drops.
 * stop() ends new sends; the promise resolves once every started message is acknowledged or
 * the drain deadline passes.
 */
export class Sender {
  private socket?: ClientSocket;
  private stopping = false;
  private seq = 0;
  readonly done: Promise<void>;
  private drainDeadline = Infinity;

  constructor(private readonly o: SenderOptions) {
    // `window` messages in flight per client, each retried on its own, as a client with an
    // outbox does: more sends are in flight at the moment something breaks.
    const window = o.window ?? 1;
    this.done = Promise.all(
      Array.from({ length: window }, (_, i) =>
        sleep((i * o.intervalMs) / window).then(() => this.run(window)),
      ),
    ).then(() => undefined);
  }

  stop(drainMs: number): Promise<void> {
    this.stopping = true;
    this.drainDeadline = Date.now() + drainMs;
    return this.done;
  }

  close(): void {
    this.socket?.close();
  }

  /** Drops the connection (in-flight sends are retried): a client moving back to its home. */
  rehome(): void {
    this.socket?.disconnect();
  }

  private connecting?: Promise<ClientSocket | undefined>;

  /** One (re)connection at a time, shared by the in-flight messages. */
  private ensureSocket(): Promise<ClientSocket | undefined> {
    if (this.socket?.connected) return Promise.resolve(this.socket);
    this.connecting ??= this.reconnect().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async reconnect(): Promise<ClientSocket | undefined> {
    if (this.socket) {
      this.socket.close();
      this.socket = undefined;
      this.o.ledger.reconnects++;
    }
    for (const url of this.o.urls()) {
      try {
        this.socket = await connect(url, this.o.token, 5000);
        return this.socket;
      } catch (err) {
        this.o.ledger.count(
          this.o.ledger.connectErrors,
          (err as { code?: string }).code ?? 'ERROR',
        );
      }
    }
    return undefined;
  }

  private async run(window: number): Promise<void> {
    while (!this.stopping) {
      const started = Date.now();
      await this.deliver(`${this.o.tag}-${this.seq++}`);
      const wait = this.o.intervalMs * window - (Date.now() - started);
      if (wait > 0) await sleep(wait);
    }
  }

  /** Retries one message until acknowledged (or the drain deadline after stop()). */
  private async deliver(clientMsgId: string): Promise<void> {
    const { ledger } = this.o;
    const entry = { attempts: 0 } as { attempts: number; ackedId?: number; ackedAt?: number };
    ledger.messages.set(clientMsgId, entry);
    while (Date.now() < this.drainDeadline) {
      const socket = await this.ensureSocket();
      if (!socket) {
        await sleep(250);
        continue;
      }
      entry.attempts++;
      const t0 = Date.now();
      const res = await sendOnce(
        socket,
        { roomId: this.o.roomId, clientMsgId, content: `drill ${clientMsgId}` },
        this.o.ackTimeoutMs,
      );
      if (res === 'timeout') {
        ledger.timeouts++;
        continue;
      }
      if (res === 'disconnected') {
        ledger.disconnects++;
        await sleep(100);
        continue;
      }
      if (res.ok) {
        entry.ackedId = res.data.id;
        entry.ackedAt = Date.now();
        return;
      }
      ledger.errorAckMs.push(Date.now() - t0);
      ledger.count(ledger.errors, res.error.code);
      await sleep(Math.min(res.error.retryAfterMs ?? 250, 1000));
    }
  }
}

export interface StoredRow {
  id: string;
  client_msg_id: string;
}

/** Reads what the database holds for the drill's messages, straight from PostgreSQL. */
export async function storedRows(dbUrl: string, roomIds: string[]): Promise<StoredRow[]> {
  const pg = new Client({ connectionString: dbUrl });
  await pg.connect();
  try {
    return (
      await pg.query<StoredRow>(
        `SELECT id::text, client_msg_id FROM messages
          WHERE room_id = ANY($1::uuid[]) AND client_msg_id IS NOT NULL`,
        [roomIds],
      )
    ).rows;
  } finally {
    await pg.end();
  }
}

export interface Verdict {
  name: string;
  ok: boolean;
  line: string;
  counts: Record<string, number>;
}

/**
 * The exactly-once verdict: every acknowledged message stored once under the id its ack named,
 * no clientMsgId stored twice, and nothing left unacknowledged (every retried message made it).
 */
export function verdict(
  name: string,
  ledger: Ledger,
  rows: StoredRow[],
  extra: { problems: string[]; notes: string[] },
): Verdict {
  const byClient = new Map<string, string[]>();
  for (const r of rows)
    byClient.set(r.client_msg_id, [...(byClient.get(r.client_msg_id) ?? []), r.id]);
  let lost = 0;
  let wrongId = 0;
  let unacked = 0;
  for (const [clientMsgId, m] of ledger.messages) {
    const stored = byClient.get(clientMsgId) ?? [];
    if (m.ackedId === undefined) {
      unacked++;
      continue;
    }
    if (stored.length === 0) lost++;
    else if (!stored.includes(String(m.ackedId))) wrongId++;
  }
  const duplicated = [...byClient.values()].filter((ids) => ids.length > 1).length + wrongId;
  const stored = [...byClient.keys()].filter((k) => ledger.messages.has(k)).length;
  const counts = {
    sent: ledger.sent,
    attempts: ledger.attempts,
    acknowledged: ledger.acknowledged,
    retried: ledger.retried,
    stored,
    lost,
    duplicated,
    unacked,
  };
  const problems = [...extra.problems];
  if (lost) problems.push(`${lost} acknowledged message(s) not stored`);
  if (duplicated)
    problems.push(`${duplicated} message(s) stored more than once or under another id`);
  if (unacked) problems.push(`${unacked} message(s) never acknowledged despite retries`);
  if (ledger.sent === 0) problems.push('nothing was sent');
  const ok = problems.length === 0;
  const errors = [...ledger.errors].map(([k, v]) => `${k}=${v}`).join(',') || 'none';
  const line =
    `VERDICT ${name}: ${ok ? 'PASS' : 'FAIL'} ` +
    Object.entries(counts)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ') +
    ` | error acks ${errors}; ack timeouts ${ledger.timeouts}; disconnects ${ledger.disconnects}; reconnects ${ledger.reconnects}` +
    (extra.notes.length ? ` | ${extra.notes.join('; ')}` : '') +
    (problems.length ? ` | PROBLEMS: ${problems.join('; ')}` : '');
  return { name, ok, line, counts };
}

export const pct = (xs: number[], p: number): number => {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
