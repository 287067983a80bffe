import { io, type Socket } from 'socket.io-client';
import type {
  Ack,
  ClientToServer,
  CommandName,
  Commands,
  ServerEventName,
  ServerEvents,
  ServerToClient,
} from '../../src/chat/contract';
import type { TestApp } from './app';

export type ClientSocket = Socket<ServerToClient, ClientToServer>;

/** A real socket.io-client connection; resolves once connected, rejects with the connect_error. */
export function connect(
  t: Pick<TestApp, 'url'>,
  token?: string,
  opts: Parameters<typeof io>[1] = {},
): Promise<ClientSocket> {
  const socket: ClientSocket = io(t.url, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    ...(token ? { auth: { token } } : {}),
    ...opts,
  });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (err) => {
      socket.close();
      reject(err);
    });
  });
}

/**
 * Sends a command and waits for its ack, at most `ackTimeoutMs` (a test that queues hundreds of
 * commands on embedded PGlite, which runs one query at a time, passes a longer wait: its
 * invariant is the outcome, not the latency).
 */
export function call<K extends CommandName>(
  socket: ClientSocket,
  name: K,
  payload: Commands[K][0],
  ackTimeoutMs = 10_000,
): Promise<Ack<Commands[K][1]>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no ack for ${name} within ${ackTimeoutMs} ms`)),
      ackTimeoutMs,
    );
    (socket.emit as (n: string, p: unknown, cb: (r: Ack<Commands[K][1]>) => void) => void)(
      name,
      payload,
      (res) => {
        clearTimeout(timer);
        resolve(res);
      },
    );
  });
}

/** Like call, but expects ok and returns the data. */
export async function ok<K extends CommandName>(
  socket: ClientSocket,
  name: K,
  payload: Commands[K][0],
): Promise<Commands[K][1]> {
  const res = await call(socket, name, payload);
  if (!res.ok) throw new Error(`${name} failed: ${JSON.stringify(res.error)}`);
  return res.data;
}

/** Records every event of the given names, in arrival order. */
export function record(socket: ClientSocket, ...names: ServerEventName[]) {
  const events: { name: ServerEventName; payload: unknown }[] = [];
  for (const name of names) {
    (socket.on as (n: string, cb: (p: unknown) => void) => void)(name, (payload) =>
      events.push({ name, payload }),
    );
  }
  return {
    events,
    of<K extends ServerEventName>(name: K): ServerEvents[K][] {
      return events.filter((e) => e.name === name).map((e) => e.payload as ServerEvents[K]);
    },
  };
}

/** Waits for the next event of a name matching an optional predicate. */
export function next<K extends ServerEventName>(
  socket: ClientSocket,
  name: K,
  match: (p: ServerEvents[K]) => boolean = () => true,
  ms = 5000,
): Promise<ServerEvents[K]> {
  return new Promise((resolve, reject) => {
    const on = (socket.on as (n: string, cb: (p: ServerEvents[K]) => void) => void).bind(socket);
    const off = (socket.off as (n: string, cb: (p: ServerEvents[K]) => void) => void).bind(socket);
    const handler = (p: ServerEvents[K]) => {
      if (!match(p)) return;
      clearTimeout(timer);
      off(name, handler);
      resolve(p);
    };
    const timer = setTimeout(() => {
      off(name, handler);
      reject(new Error(`timed out waiting for ${name}`));
    }, ms);
    on(name, handler);
  });
}

export function disconnected(socket: ClientSocket, ms = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    if (socket.disconnected) return resolve('already');
    const timer = setTimeout(() => reject(new Error('still connected')), ms);
    socket.once('disconnect', (reason) => {
      clearTimeout(timer);
      resolve(reason);
    });
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
