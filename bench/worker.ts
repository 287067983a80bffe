/**
 * A load worker: holds a share of the socket.io-client connections, sends on an open-loop
 * schedule and records, for every message.created it receives, the time from the message's
 * scheduled send time (carried in its content) to its arrival, on the host's monotonic clock.
 * Driven by the orchestrator over the fork IPC channel (see lib/protocol.ts).
 */
import { io, type Socket } from 'socket.io-client';
import { ParlorClient } from '../client/index.js';
import type { Ack, ClientToServer, ServerToClient } from '../src/chat/contract';
import type { MessageDto } from '../src/common/wire.js';
import { encode, type Histogram, newHistogram, recordMs } from './lib/hist';
import type { ConnKind, ConnSpec, FromWorker, StepSpec, StepStats, ToWorker } from './lib/protocol';
import { mono, pool, within } from './lib/util';

type WireSocket = Socket<ServerToClient, ClientToServer>;

interface Conn {
  socket: WireSocket;
  sendTo: Record<string, string>;
  close: () => void;
}

interface StepState {
  sent: number;
  acked: number;
  ackErrors: Record<string, number>;
  received: number;
  latency: Histogram;
  ack: Histogram;
}

const WORKER = process.argv[2] ?? '0';
const CONNECT_TIMEOUT_MS = 30_000;
/** A step sends at most this many messages per worker, whatever rate and duration say. */
const MAX_SENDS_PER_STEP = 2_000_000;

const groups = new Map<string, Conn[]>();
const steps = new Map<number, StepState>();
const progressTimers = new Map<number, NodeJS.Timeout>();
let late = 0;

function send(msg: FromWorker): void {
  process.send?.(msg);
}

/** Content is `<step>|<scheduled ms>|xxxx…`, padded to the payload size. */
function onCreated(content: string | undefined): void {
  if (!content) return;
  const a = content.indexOf('|');
  const b = content.indexOf('|', a + 1);
  if (a < 0 || b < 0) return;
  const state = steps.get(Number(content.slice(0, a)));
  if (!state) {
    late++;
    return;
  }
  state.received++;
  recordMs(state.latency, mono() - Number(content.slice(a + 1, b)));
}

async function openOne(kind: ConnKind, spec: ConnSpec): Promise<Conn> {
  const options = {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
  };
  if (kind === 'parlor') {
    const client = await within(
      ParlorClient.connect({ url: spec.url, token: spec.token ?? '', socket: options }),
      CONNECT_TIMEOUT_MS,
      'Parlor connect',
    );
    client.on('message.created', (m: MessageDto) => onCreated(m.content));
    // The client package is ESM: its Socket type is socket.io-client's ESM build, the same
    // class as this file's (CommonJS) import at run time (the bundle holds one copy).
    const socket = client.socket as unknown as WireSocket;
    return { socket, sendTo: spec.sendTo, close: () => client.close() };
  }
  const socket: WireSocket = io(spec.url, { ...options, auth: { rooms: spec.rooms ?? [] } });
  await within(
    new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', (err) => reject(err));
    }),
    CONNECT_TIMEOUT_MS,
    'reference connect',
  ).catch((err: unknown) => {
    socket.close();
    throw err;
  });
  socket.on('message.created', (m) => onCreated(m.content));
  return { socket, sendTo: spec.sendTo, close: () => socket.close() };
}

async function open(group: string, kind: ConnKind, conns: ConnSpec[], concurrency: number) {
  const list = groups.get(group) ?? [];
  groups.set(group, list);
  const errors: string[] = [];
  let failed = 0;
  let lastReport = 0;
  await pool(
    conns,
    concurrency,
    async (spec) => {
      try {
        list.push(await openOne(kind, spec));
      } catch (err) {
        failed++;
        if (errors.length < 5) errors.push((err as Error).message);
      }
    },
    (done) => {
      const now = Date.now();
      if (now - lastReport > 250) {
        lastReport = now;
        send({ t: 'open-progress', group, done });
      }
    },
  );
  send({ t: 'opened', group, ok: list.length, failed, errors });
}

function runStep(spec: StepSpec): void {
  const state: StepState = {
    sent: 0,
    acked: 0,
    ackErrors: {},
    received: 0,
    latency: newHistogram(),
    ack: newHistogram(),
  };
  steps.set(spec.id, state);
  const senders = (groups.get(spec.group) ?? []).filter((c) => c.sendTo[spec.shape]);
  const total = Math.min(MAX_SENDS_PER_STEP, senders.length ? spec.count : 0);
  const interval = 1000 / spec.rate;
  const padding = 'x'.repeat(spec.payloadBytes);
  let next = spec.startAt;
  let i = 0;
  const progress = setInterval(() => {
    send({
      t: 'step-progress',
      id: spec.id,
      sent: state.sent,
      received: state.received,
      sendingDone: i >= total,
    });
  }, 250);

  const fire = (conn: Conn, scheduled: number, n: number) => {
    const prefix = `${spec.id}|${scheduled.toFixed(3)}|`;
    const content = prefix + padding.slice(0, Math.max(1, spec.payloadBytes - prefix.length));
    const roomId = conn.sendTo[spec.shape];
    state.sent++;
    conn.socket.emit(
      'message.send',
      { roomId, clientMsgId: `s${spec.id}w${WORKER}n${n}`, content },
      (res: Ack<MessageDto>) => {
        if (res.ok) {
          state.acked++;
          recordMs(state.ack, mono() - scheduled);
        } else {
          state.ackErrors[res.error.code] = (state.ackErrors[res.error.code] ?? 0) + 1;
        }
      },
    );
  };

  // Open loop: every message goes out at its scheduled time (or as soon after as this process
  // can), and its latency counts from the scheduled time, so a stalled server cannot slow the
  // offered load down and hide its own queueing (no coordinated omission).
  const tick = () => {
    const now = mono();
    while (i < total && next <= now) {
      fire(senders[i % senders.length], next, i);
      i++;
      next += interval;
    }
    if (i < total) setTimeout(tick, Math.max(0, Math.min(next - mono(), 10)));
  };
  // Reports go on through the drain, until the orchestrator collects the step.
  progressTimers.set(spec.id, progress);
  setTimeout(tick, Math.max(0, next - mono()));
}

function collect(id: number): void {
  clearInterval(progressTimers.get(id));
  progressTimers.delete(id);
  const state = steps.get(id);
  steps.delete(id);
  const empty = newHistogram();
  const stats: StepStats = {
    id,
    sent: state?.sent ?? 0,
    acked: state?.acked ?? 0,
    ackErrors: state?.ackErrors ?? {},
    received: state?.received ?? 0,
    late,
    latency: encode(state?.latency ?? empty),
    ack: encode(state?.ack ?? empty),
  };
  late = 0;
  state?.latency.destroy();
  state?.ack.destroy();
  empty.destroy();
  send({ t: 'stats', stats });
}

function close(group: string): void {
  for (const c of groups.get(group) ?? []) c.close();
  groups.delete(group);
  send({ t: 'closed', group });
}

process.on('message', (msg: ToWorker) => {
  switch (msg.t) {
    case 'open':
      void open(msg.group, msg.kind, msg.conns, msg.concurrency);
      break;
    case 'step':
      runStep(msg.step);
      break;
    case 'collect':
      collect(msg.id);
      break;
    case 'close':
      close(msg.group);
      break;
    case 'exit':
      for (const g of [...groups.keys()]) close(g);
      setTimeout(() => process.exit(0), 100);
      break;
  }
});
// Never outlive the orchestrator.
process.on('disconnect', () => process.exit(0));
send({ t: 'ready' });
