/**
 * The load workers (child_process.fork of bench/worker.ts): connections are spread over them
 * round-robin, every step's histograms come back encoded and are merged here.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import { merge, type Percentiles, percentiles } from './hist';
import type { ConnKind, ConnSpec, FromWorker, StepStats, ToWorker } from './protocol';
import { BUILD, track } from './servers';
import { log, mono, Progress, sleep } from './util';

export interface StepRequest {
  group: string;
  shape: string;
  /** Offered load, messages per second over all workers. */
  rate: number;
  durationMs: number;
  /**
   * Sent before durationMs at the same rate, its latencies not recorded: the step's first
   * second from a quiet machine (cold sockets, workers and caches) is not its steady state.
   */
  warmupMs?: number;
  payloadBytes: number;
  /** Receivers per message (the room's size: the sender gets its own message.created too). */
  fanout: number;
  /** Longest wait for the last deliveries after the last send. */
  drainMs: number;
  /** Shown on the progress bar (deliveries received so far / expected). */
  label?: string;
}

export interface StepResult {
  id: number;
  group: string;
  shape: string;
  payloadBytes: number;
  offered: number;
  durationMs: number;
  sent: number;
  acked: number;
  ackErrors: Record<string, number>;
  expected: number;
  received: number;
  /** received / expected (1 = every receiver got every message in time). */
  delivery: number;
  late: number;
  /** Scheduled send → each receiver. */
  latency: Percentiles | null;
  /** Scheduled send → the sender's ack. */
  ack: Percentiles | null;
  /** The load generator itself: whether it kept up. */
  generator: GeneratorLoad;
}

export interface GeneratorLoad {
  /** Each worker's own CPU (user + system) while it was sending, % of one core. */
  cpu: number[];
  /** The busiest worker's. */
  maxCpu: number;
  /** How late sends left against their schedule. */
  lag: Percentiles | null;
}

export class Fleet {
  private nextStep = 0;
  private readonly listeners = new Set<(w: number, m: FromWorker) => void>();

  private constructor(private readonly workers: ChildProcess[]) {
    workers.forEach((w, i) =>
      w.on('message', (m: FromWorker) => {
        for (const l of this.listeners) l(i, m);
      }),
    );
  }

  static async start(count: number): Promise<Fleet> {
    const script = join(BUILD, 'bench', 'worker.js');
    const workers = Array.from({ length: count }, (_, i) => {
      const w = fork(script, [String(i)], {
        execArgv: ['--enable-source-maps', '--max-old-space-size=8192'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      track(w);
      return w;
    });
    const fleet = new Fleet(workers);
    await fleet.gather((m) => m.t === 'ready', 30_000, 'workers ready');
    return fleet;
  }

  get pids(): number[] {
    return this.workers.map((w) => w.pid!);
  }

  get size(): number {
    return this.workers.length;
  }

  private post(i: number, msg: ToWorker): void {
    this.workers[i].send(msg);
  }

  /** Waits for one matching message from every worker. */
  private gather<M extends FromWorker>(
    match: (m: FromWorker) => m is M,
    timeoutMs: number,
    what: string,
    onOther?: (w: number, m: FromWorker) => void,
  ): Promise<M[]>;
  private gather(
    match: (m: FromWorker) => boolean,
    timeoutMs: number,
    what: string,
    onOther?: (w: number, m: FromWorker) => void,
  ): Promise<FromWorker[]>;
  private gather(
    match: (m: FromWorker) => boolean,
    timeoutMs: number,
    what: string,
    onOther?: (w: number, m: FromWorker) => void,
  ): Promise<FromWorker[]> {
    return new Promise((resolve, reject) => {
      const got = new Map<number, FromWorker>();
      const done = (err?: Error) => {
        clearTimeout(timer);
        this.listeners.delete(listener);
        if (err) reject(err);
        else resolve([...got.entries()].sort((a, b) => a[0] - b[0]).map(([, m]) => m));
      };
      const listener = (w: number, m: FromWorker) => {
        if (match(m)) {
          got.set(w, m);
          if (got.size === this.workers.length) done();
        } else onOther?.(w, m);
      };
      const timer = setTimeout(
        () => done(new Error(`timed out after ${timeoutMs} ms: ${what}`)),
        timeoutMs,
      );
      this.listeners.add(listener);
    });
  }

  /** Opens the connections (spread round-robin over the workers), with a progress bar. */
  async open(
    group: string,
    kind: ConnKind,
    conns: ConnSpec[],
    concurrency = 64,
  ): Promise<{ ok: number; failed: number; errors: string[]; ms: number }> {
    const t0 = Date.now();
    const bar = new Progress(`connect ${group}`, conns.length);
    const done = new Array<number>(this.workers.length).fill(0);
    const waiting = this.gather(
      (m) => m.t === 'opened' && m.group === group,
      Math.max(120_000, conns.length * 20),
      `open ${group}`,
      (w, m) => {
        if (m.t === 'open-progress' && m.group === group) {
          done[w] = m.done;
          bar.update(done.reduce((a, b) => a + b, 0));
        }
      },
    );
    this.workers.forEach((_, i) =>
      this.post(i, {
        t: 'open',
        group,
        kind,
        conns: conns.filter((_c, j) => j % this.workers.length === i),
        concurrency: Math.max(1, Math.ceil(concurrency / this.workers.length)),
      }),
    );
    const replies = (await waiting) as Extract<FromWorker, { t: 'opened' }>[];
    const ok = replies.reduce((a, r) => a + r.ok, 0);
    const failed = replies.reduce((a, r) => a + r.failed, 0);
    const errors = replies.flatMap((r) => r.errors).slice(0, 5);
    bar.finish(failed ? `(${failed} failed: ${errors[0]})` : '');
    return { ok, failed, errors, ms: Date.now() - t0 };
  }

  async close(group: string): Promise<void> {
    const waiting = this.gather((m) => m.t === 'closed' && m.group === group, 60_000, 'close');
    this.workers.forEach((_, i) => this.post(i, { t: 'close', group }));
    await waiting;
  }

  /**
   * One load step: every worker sends rate/N messages per second for warmupMs + durationMs
   * (latencies timed after the warm-up), staggered so
   * the sends interleave; then waits for deliveries (up to drainMs after the last send) and
   * collects. Everything not received by then counts as not delivered.
   */
  async step(r: StepRequest): Promise<StepResult> {
    const id = ++this.nextStep;
    const n = this.workers.length;
    const interval = 1000 / r.rate;
    const warmupMs = r.warmupMs ?? 0;
    const sendMs = warmupMs + r.durationMs;
    const startAt = mono() + 300;
    const sent = new Array<number>(n).fill(0);
    const received = new Array<number>(n).fill(0);
    const sendingDone = new Array<boolean>(n).fill(false);
    const total = Math.max(1, Math.round((r.rate * sendMs) / 1000));
    const planned = total * r.fanout;
    const bar = r.label ? new Progress(r.label, planned, true) : undefined;
    const onProgress = (w: number, m: FromWorker) => {
      if (m.t === 'step-progress' && m.id === id) {
        sent[w] = m.sent;
        received[w] = m.received;
        sendingDone[w] = m.sendingDone;
        bar?.update(
          received.reduce((a, b) => a + b, 0),
          'deliveries',
        );
      }
    };
    this.listeners.add(onProgress);
    try {
      this.workers.forEach((_, i) =>
        this.post(i, {
          t: 'step',
          step: {
            id,
            group: r.group,
            shape: r.shape,
            rate: r.rate / n,
            startAt: startAt + i * interval,
            durationMs: sendMs,
            warmupMs,
            count: Math.floor(total / n) + (i < total % n ? 1 : 0),
            payloadBytes: r.payloadBytes,
          },
        }),
      );
      const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
      // Sending: bounded by the step's duration plus a margin for a lagging worker.
      const sendDeadline = Date.now() + sendMs + 300 + Math.max(5000, sendMs);
      while (!sendingDone.every(Boolean) && Date.now() < sendDeadline) await sleep(50);
      if (!sendingDone.every(Boolean)) log(`  ! step ${id}: a worker could not finish sending`);
      const drainDeadline = Date.now() + r.drainMs;
      while (Date.now() < drainDeadline && sum(received) < sum(sent) * r.fanout) await sleep(50);
    } finally {
      this.listeners.delete(onProgress);
      bar?.finish();
    }
    const waiting = this.gather((m) => m.t === 'stats' && m.stats.id === id, 60_000, 'collect');
    this.workers.forEach((_, i) => this.post(i, { t: 'collect', id }));
    const stats = ((await waiting) as Extract<FromWorker, { t: 'stats' }>[]).map((m) => m.stats);
    return this.summarise(id, r, stats);
  }

  private summarise(id: number, r: StepRequest, stats: StepStats[]): StepResult {
    const add = (f: (s: StepStats) => number) => stats.reduce((a, s) => a + f(s), 0);
    const ackErrors: Record<string, number> = {};
    for (const s of stats)
      for (const [k, v] of Object.entries(s.ackErrors)) ackErrors[k] = (ackErrors[k] ?? 0) + v;
    const latency = merge(stats.map((s) => s.latency));
    const ack = merge(stats.map((s) => s.ack));
    const lag = merge(stats.map((s) => s.lag));
    const cpu = stats.map((s) =>
      s.sendWallMs > 0 ? Math.round((s.cpuMs / s.sendWallMs) * 1000) / 10 : 0,
    );
    const sent = add((s) => s.sent);
    const received = add((s) => s.received);
    const expected = sent * r.fanout;
    const result: StepResult = {
      id,
      group: r.group,
      shape: r.shape,
      payloadBytes: r.payloadBytes,
      offered: r.rate,
      durationMs: (r.warmupMs ?? 0) + r.durationMs,
      sent,
      acked: add((s) => s.acked),
      ackErrors,
      expected,
      received,
      delivery: expected ? received / expected : 0,
      late: add((s) => s.late),
      latency: percentiles(latency),
      ack: percentiles(ack),
      generator: { cpu, maxCpu: Math.max(0, ...cpu), lag: percentiles(lag) },
    };
    return result;
  }

  async exit(): Promise<void> {
    const exits = this.workers.map(
      (w) =>
        new Promise<void>((res) => (w.exitCode !== null ? res() : w.once('exit', () => res()))),
    );
    this.workers.forEach((w, i) => {
      if (w.connected) this.post(i, { t: 'exit' });
    });
    await Promise.race([Promise.all(exits), sleep(5000)]);
    for (const w of this.workers) if (w.exitCode === null) w.kill('SIGKILL');
  }
}
