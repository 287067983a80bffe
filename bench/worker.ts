/**
 * A load worker: holds a share of the socket.io-client connections, sends on an open-loop
 * schedule and records, for every message.created it receives, the time from the message's
 * scheduled send time (carried in its content) to its arrival, on the host's monotonic clock.
 * Driven by the orchestrator over the fork IPC channel (see lib/protocol.ts).
 *
 * Kept cheap, so that the generator is not what caps a fast target: both targets go through
 * the same bare socket.io-client (Parlor's typed client adds reconnect and catch-up machinery
 * a load test does not need), a message costs only what sending it needs (its content, its
 * clientMsgId, its payload object; one shared ack handler), and latencies go into
 * preallocated histograms, parsed out of the content without slicing it.
 */
import { performance } from 'node:perf_hooks';
import { io, type Socket } from 'socket.io-client';
import type { Ack, ClientToServer, ServerToClient } from '../src/chat/contract';
import type { MessageDto } from '../src/common/wire.js';
import { encode, Histogram } from './lib/hist';
import type { ConnKind, ConnSpec, FromWorker, StepSpec, StepStats, ToWorker } from './lib/protocol';
import { mono, pool, within } from './lib/util';

type WireSocket = Socket<ServerToClient, ClientToServer>;

interface Conn {
  socket: WireSocket;
  sendTo: Record<string, string>;
}

interface StepState {
  sent: number;
  acked: number;
  ackErrors: Record<string, number>;
  received: number;
  /** Allocated once per step: recording a value allocates nothing. */
  latency: Histogram;
  ack: Histogram;
  lag: Histogram;
  /** Messages scheduled before this (the warm-up) are delivered and counted, not timed. */
  timedFrom: number;
  cpuMs: number;
  sendWallMs: number;
  /** Closes the CPU window (at the latest when the step is collected). */
  endCpu: () => void;
}

const WORKER = process.argv[2] ?? '0';
const CONNECT_TIMEOUT_MS = 30_000;
/** A step sends at most this many messages per worker, whatever rate and duration say. */
const MAX_SENDS_PER_STEP = 2_000_000;

const groups = new Map<string, Conn[]>();
const steps = new Map<number, StepState>();
const progressTimers = new Map<number, NodeJS.Timeout>();
let late = 0;

/**
 * The monotonic clock of lib/util's mono() (CLOCK_MONOTONIC, shared by every process on the
 * host) without its BigInt: performance.now() runs on the same clock from this process's
 * origin, so one offset, taken once, converts it.
 */
const MONO_OFFSET = (() => {
  let best = Infinity;
  let offset = 0;
  for (let i = 0; i < 50; i++) {
    const a = performance.now();
    const m = mono();
    const b = performance.now();
    if (b - a < best) {
      best = b - a;
      offset = m - (a + b) / 2;
    }
  }
  return offset;
})();
const now = () => performance.now() + MONO_OFFSET;

function send(msg: FromWorker): void {
  process.send?.(msg);
}

/**
 * Content is `<step>|<scheduled µs>|xxxx…`, padded to the payload size. Parsed digit by digit:
 * returns the step id and leaves the scheduled time in `parsedAt` (no substring, no array).
 */
let parsedAt = 0;
function parse(content: string | undefined): number {
  if (!content) return -1;
  const n = content.length;
  let i = 0;
  let id = 0;
  let c: number;
  while (i < n && (c = content.charCodeAt(i)) !== 124) {
    if (c < 48 || c > 57) return -1;
    id = id * 10 + (c - 48);
    i++;
  }
  let at = 0;
  for (i++; i < n && (c = content.charCodeAt(i)) !== 124; i++) {
    if (c < 48 || c > 57) return -1;
    at = at * 10 + (c - 48);
  }
  if (i >= n) return -1;
  parsedAt = at / 1000;
  return id;
}

function onCreated(m: MessageDto): void {
  const id = parse(m.content);
  if (id < 0) return; // not a message of this harness
  const state = steps.get(id);
  if (!state) {
    late++;
    return;
  }
  state.received++;
  if (parsedAt >= state.timedFrom) state.latency.recordValue((now() - parsedAt) * 1000);
}

async function openOne(kind: ConnKind, spec: ConnSpec): Promise<Conn> {
  const socket: WireSocket = io(spec.url, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    auth: kind === 'parlor' ? { token: spec.token ?? '' } : { rooms: spec.rooms ?? [] },
  });
  await within(
    new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', (err) => reject(err));
    }),
    CONNECT_TIMEOUT_MS,
    `${kind} connect`,
  ).catch((err: unknown) => {
    socket.close();
    throw err;
  });
  socket.on('message.created', onCreated);
  return { socket, sendTo: spec.sendTo };
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
      const t = Date.now();
      if (t - lastReport > 250) {
        lastReport = t;
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
    latency: new Histogram(),
    ack: new Histogram(),
    lag: new Histogram(),
    timedFrom: spec.startAt + spec.warmupMs,
    cpuMs: 0,
    sendWallMs: 0,
    endCpu: () => undefined,
  };
  steps.set(spec.id, state);
  const senders = (groups.get(spec.group) ?? []).filter((c) => c.sendTo[spec.shape]);
  const rooms = senders.map((c) => c.sendTo[spec.shape]);
  const total = Math.min(MAX_SENDS_PER_STEP, senders.length ? spec.count : 0);
  const interval = 1000 / spec.rate;
  const padding = 'x'.repeat(spec.payloadBytes);
  const head = `${spec.id}|`;
  const idPrefix = `s${spec.id}w${WORKER}n`;
  let next = spec.startAt;
  let i = 0;
  // The worker's CPU is measured from its first send over the step's scheduled duration (or
  // until its last send, if later): one short burst of sends is not a saturated worker.
  let cpu0: NodeJS.CpuUsage | undefined;
  let wall0 = 0;
  let cpuTimer: NodeJS.Timeout | undefined;
  const endCpu = () => {
    if (!cpu0 || state.sendWallMs) return;
    clearTimeout(cpuTimer);
    const used = process.cpuUsage(cpu0);
    state.cpuMs = (used.user + used.system) / 1000;
    state.sendWallMs = now() - wall0;
  };
  state.endCpu = endCpu;
  // One ack handler for the whole step (an error ack carries no content to parse).
  const onAck = (res: Ack<MessageDto>) => {
    if (!res.ok) {
      state.ackErrors[res.error.code] = (state.ackErrors[res.error.code] ?? 0) + 1;
      return;
    }
    state.acked++;
    if (parse(res.data.content) === spec.id && parsedAt >= state.timedFrom)
      state.ack.recordValue((now() - parsedAt) * 1000);
  };
  const progress = setInterval(() => {
    send({
      t: 'step-progress',
      id: spec.id,
      sent: state.sent,
      received: state.received,
      sendingDone: i >= total,
    });
  }, 250);

  // Open loop: every message goes out at its scheduled time (or as soon after as this process
  // can), and its latency counts from the scheduled time, so a stalled server cannot slow the
  // offered load down and hide its own queueing (no coordinated omission). How late a send
  // leaves is recorded too: a generator that cannot keep its schedule is saturated.
  const tick = () => {
    const t = now();
    if (!cpu0) {
      cpu0 = process.cpuUsage();
      wall0 = t;
    }
    while (i < total && next <= t) {
      const k = i % senders.length;
      const prefix = head + Math.round(next * 1000) + '|';
      if (next >= state.timedFrom) state.lag.recordValue((t - next) * 1000);
      state.sent++;
      senders[k].socket.emit(
        'message.send',
        {
          roomId: rooms[k],
          clientMsgId: idPrefix + i,
          content: prefix + padding.slice(0, Math.max(1, spec.payloadBytes - prefix.length)),
        },
        onAck,
      );
      i++;
      next += interval;
    }
    if (i < total) setTimeout(tick, Math.max(0, Math.min(next - now(), 10)));
    else cpuTimer = setTimeout(endCpu, Math.max(0, wall0 + spec.durationMs - now()));
  };
  // Reports go on through the drain, until the orchestrator collects the step.
  progressTimers.set(spec.id, progress);
  if (total > 0) setTimeout(tick, Math.max(0, next - now()));
}

function collect(id: number): void {
  clearInterval(progressTimers.get(id));
  progressTimers.delete(id);
  const state = steps.get(id);
  steps.delete(id);
  state?.endCpu();
  const stats: StepStats = {
    id,
    sent: state?.sent ?? 0,
    acked: state?.acked ?? 0,
    ackErrors: state?.ackErrors ?? {},
    received: state?.received ?? 0,
    late,
    latency: encode(state?.latency ?? new Histogram()),
    ack: encode(state?.ack ?? new Histogram()),
    lag: encode(state?.lag ?? new Histogram()),
    cpuMs: state?.cpuMs ?? 0,
    sendWallMs: state?.sendWallMs ?? 0,
  };
  late = 0;
  send({ t: 'stats', stats });
}

function close(group: string): void {
  for (const c of groups.get(group) ?? []) c.socket.close();
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
