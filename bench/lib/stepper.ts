/**
 * Offered load stepped up until a target fails (p99 > 500 ms or delivery < 99.9 %), the targets
 * alternating at every level (A/B, then B/A) so slow drifts of the machine hit both alike.
 *
 * A failed step whose load generator was saturated is "generator-bound": the harness, not the
 * target, ran out, so it ends that target's climb without counting as the target's failure
 * (its maximum is then reported as "≥").
 */
import type { Fleet, StepResult } from './fleet';
import type { Database } from './servers';
import { type GroupUsage, Usage, waitQuiet } from './usage';
import { fmt, log, sleep, table } from './util';

export const P99_LIMIT_MS = 500;
export const DELIVERY_MIN = 0.999;
/** A worker using this much of a core while sending is saturated. */
export const GEN_CPU_MAX = 90;
/**
 * Sends leaving this late (p99, ms) while the target used less than GEN_TARGET_CPU % (server +
 * database): the generator could not offer the load, and not because the target took the CPU
 * (a busy worker, or other work on the host starving it).
 */
export const GEN_LAG_MS = 50;
export const GEN_TARGET_CPU = 90;

export interface Target {
  /** Label in tables (e.g. `reference`, `parlor`, `1 instance`). */
  name: string;
  /** Worker connection group. */
  group: string;
  /** Processes whose CPU/RSS is sampled during a step, by role (server, postgres, redis, …). */
  processes: () => Promise<Record<string, number[]>>;
  /** Persisted rows are counted in PostgreSQL for targets that write (Parlor). */
  db?: Database;
  /** Send statements and their rows so far (Parlor's `parlor_send_batch_rows` histogram). */
  batches?: () => Promise<{ statements: number; rows: number }>;
  profile?: { start: () => Promise<void>; stop: (file: string) => Promise<void> };
}

export interface Level extends StepResult {
  target: string;
  usage: Record<string, GroupUsage>;
  /** Rows of this step found in PostgreSQL after the drain (null: no database). */
  persisted: number | null;
  /** Persisted (or, without a database, acknowledged broadcast) messages per second. */
  throughput: number;
  /** Members' messages per send statement during the step (null: not a Parlor target). */
  rowsPerBatch: number | null;
  /** CPU time per persisted message (Parlor) or acknowledged broadcast (reference), µs. */
  cpuPerMsg: CpuPerMessage;
  pass: boolean;
  why: string;
  /** The generator was saturated during the step (see GEN_*): `generatorWhy` says how. */
  generatorBound: boolean;
  generatorWhy: string;
}

export interface CpuPerMessage {
  /** The target: its server process plus, for Parlor, its PostgreSQL backends. */
  target: number | null;
  server: number | null;
  postgres: number | null;
  /** The load workers (sending and receiving). */
  workers: number | null;
}

export interface LoadShape {
  shape: string;
  payloadBytes: number;
  fanout: number;
  durationMs: number;
  /** Sent first at the step's rate, not timed (see StepRequest.warmupMs). */
  warmupMs: number;
  drainMs: number;
  settleMs: number;
}

export async function measure(
  fleet: Fleet,
  t: Target,
  shape: LoadShape,
  rate: number,
  workerPids: number[],
  profileFile?: string,
): Promise<Level> {
  let mark = 0;
  if (t.db) {
    const [r] = await t.db.query<{ max: string | null }>(`SELECT max(id) AS max FROM messages`);
    mark = Number(r.max ?? 0);
  }
  const procs = await t.processes();
  // Start from a quiet machine: the server, its database and the workers done with the last step.
  await waitQuiet([...Object.values(procs).flat(), ...workerPids], 30, 15_000);
  // (Read outside the sampled window: the scrape's own CPU is not the step's.)
  const batchesBefore = await t.batches?.().catch(() => undefined);
  const usage = new Usage({ ...procs, workers: workerPids }, () => t.processes());
  await usage.begin();
  if (profileFile) await t.profile?.start();
  const step = await fleet.step({
    group: t.group,
    shape: shape.shape,
    rate,
    durationMs: shape.durationMs,
    warmupMs: shape.warmupMs,
    payloadBytes: shape.payloadBytes,
    fanout: shape.fanout,
    drainMs: shape.drainMs,
    label: `${t.name} ${shape.shape} ${shape.payloadBytes} B @ ${Math.round(rate)}/s`,
  });
  if (profileFile) await t.profile?.stop(profileFile);
  const used = await usage.end();
  const batchesAfter = batchesBefore && (await t.batches?.().catch(() => undefined));
  const statements = (batchesAfter?.statements ?? 0) - (batchesBefore?.statements ?? 0);
  const rowsPerBatch =
    batchesAfter && statements > 0
      ? (batchesAfter.rows - (batchesBefore?.rows ?? 0)) / statements
      : null;
  let persisted: number | null = null;
  if (t.db) {
    const [r] = await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM messages WHERE id > $1 AND role = 'user' AND content LIKE $2`,
      [mark, `${step.id}|%`],
    );
    persisted = r.n;
  }
  const seconds = (shape.warmupMs + shape.durationMs) / 1000;
  const messages = persisted ?? step.acked;
  const throughput = messages / seconds;
  const perMsg = (ms: number | undefined) =>
    ms === undefined || messages === 0 ? null : Math.round((ms * 1000) / messages);
  const server = perMsg(used.server?.cpuMs);
  const postgres = perMsg(used.postgres?.cpuMs);
  const p99 = step.latency?.p99 ?? Infinity;
  const why: string[] = [];
  if (p99 > P99_LIMIT_MS) why.push(`p99 ${fmt(p99, 0)} ms`);
  if (step.delivery < DELIVERY_MIN) why.push(`delivery ${fmt(step.delivery * 100, 2)} %`);
  if (step.acked < step.sent) why.push(`${step.sent - step.acked} unacked`);
  if (persisted !== null && persisted < step.acked) why.push(`${step.acked - persisted} not in db`);
  const gen = step.generator;
  const genWhy: string[] = [];
  const targetCpu = (used.server?.cpu ?? 0) + (used.postgres?.cpu ?? 0);
  if (gen.maxCpu >= GEN_CPU_MAX) genWhy.push(`a worker at ${fmt(gen.maxCpu, 0)} % CPU`);
  else if ((gen.lag?.p99 ?? 0) > GEN_LAG_MS && targetCpu < GEN_TARGET_CPU)
    genWhy.push(
      `sends ${fmt(gen.lag?.p99, 0)} ms late (p99) with the target at ${fmt(targetCpu, 0)} % CPU, ` +
        `a worker at ${fmt(gen.maxCpu, 0)} %, other work on the host ${fmt(others(used), 0)} %`,
    );
  await sleep(shape.settleMs);
  return {
    ...step,
    target: t.name,
    usage: used,
    persisted,
    throughput,
    rowsPerBatch,
    cpuPerMsg: {
      target: server === null ? null : server + (postgres ?? 0),
      server,
      postgres,
      workers: perMsg(used.workers?.cpuMs),
    },
    pass: why.length === 0,
    why: why.join(', '),
    generatorBound: genWhy.length > 0,
    generatorWhy: genWhy.join(', '),
  };
}

/** Steps every target up from `start` by `factor` until it fails or `maxSteps` levels ran. */
export async function stepped(
  fleet: Fleet,
  targets: Target[],
  shape: LoadShape,
  start: number,
  factor: number,
  maxSteps: number,
): Promise<Level[]> {
  const levels: Level[] = [];
  const alive = new Set(targets.map((t) => t.name));
  let rate = start;
  for (let i = 0; i < maxSteps && alive.size; i++, rate *= factor) {
    const order = i % 2 === 0 ? targets : [...targets].reverse();
    for (const t of order) {
      if (!alive.has(t.name)) continue;
      const level = await measure(fleet, t, shape, rate, fleet.pids);
      levels.push(level);
      log(`    ${describe(level)}`);
      // A generator-bound failure ends the climb too (more load would only saturate the
      // generator more), but sustained() does not count it as the target's failure.
      if (!level.pass) alive.delete(t.name);
    }
  }
  return levels;
}

export function describe(l: Level): string {
  return (
    `${l.target}: ${Math.round(l.offered)}/s offered, ${fmt(l.throughput, 0)}/s ` +
    `${l.persisted !== null ? 'persisted' : 'broadcast'}, delivery ${fmt(l.delivery * 100, 2)} %, ` +
    `p99 ${fmt(l.latency?.p99, 1)} ms, server CPU ${fmt(l.usage.server?.cpu, 0)} %, ` +
    `CPU ${fmt(l.cpuPerMsg.target, 0)} µs/msg, ` +
    (l.rowsPerBatch === null ? '' : `${fmt(l.rowsPerBatch, 2)} rows/statement, `) +
    `generator CPU ${fmt(l.generator.maxCpu, 0)} % (busiest worker), ` +
    `other work on the host ${fmt(others(l.usage), 0)} %` +
    (l.pass ? '' : l.generatorBound ? `  GENERATOR-BOUND (${l.why})` : `  FAIL (${l.why})`) +
    (l.generatorBound ? `  [generator saturated: ${l.generatorWhy}]` : '')
  );
}

/**
 * The highest level that passed (its throughput); whether a failure of the target bounded it;
 * whether the generator's saturation ended the climb instead (then the maximum is a floor).
 */
export function sustained(
  levels: Level[],
  target: string,
): { max: number; bounded: boolean; generatorBound: boolean } {
  const mine = levels.filter((l) => l.target === target);
  const passed = mine.filter((l) => l.pass);
  return {
    max: passed.length ? Math.max(...passed.map((l) => l.throughput)) : 0,
    bounded: mine.some((l) => !l.pass && !l.generatorBound),
    generatorBound: mine.some((l) => !l.pass && l.generatorBound),
  };
}

/** `1234`, `≥1234` (no failure within the levels run) or `≥1234 (generator-bound)`. */
export function maxLabel(s: { max: number; bounded: boolean; generatorBound: boolean }): string {
  return s.bounded
    ? fmt(s.max, 0)
    : `≥${fmt(s.max, 0)}${s.generatorBound ? ' (generator-bound)' : ''}`;
}

/** What a level came to, in the tables: `yes`, `no: …`, or `GENERATOR-BOUND: …`. */
export function verdict(l: Level): string {
  if (l.pass) return l.generatorBound ? `yes (generator saturated: ${l.generatorWhy})` : 'yes';
  return l.generatorBound ? `GENERATOR-BOUND: ${l.generatorWhy}; ${l.why}` : `no: ${l.why}`;
}

/** CPU the rest of the machine used during the step (other agents, tests, builds). */
export function others(u: Record<string, GroupUsage>): number | null {
  if (!u.machine) return null;
  const ours = Object.entries(u)
    .filter(([k]) => k !== 'machine')
    .reduce((a, [, g]) => a + g.cpu, 0);
  return Math.max(0, u.machine.cpu - ours);
}

export function levelsTable(levels: Level[]): string {
  return table(
    [
      'target',
      'offered/s',
      'sent',
      'acked',
      'persisted/s',
      'deliveries/s',
      'delivery %',
      'p50 ms',
      'p99 ms',
      'p99.9 ms',
      'ack p99',
      'srv CPU%',
      'pg CPU%',
      'CPU µs/msg',
      'wrk CPU%',
      'gen max%',
      'lag p99',
      'other CPU%',
      'srv RSS MB',
      'ok',
    ],
    levels.map((l) => [
      l.target,
      Math.round(l.offered),
      l.sent,
      l.acked,
      l.persisted === null ? '—' : fmt(l.throughput, 0),
      fmt(l.received / (l.durationMs / 1000), 0),
      fmt(l.delivery * 100, 2),
      fmt(l.latency?.p50, 1),
      fmt(l.latency?.p99, 1),
      fmt(l.latency?.p999, 1),
      fmt(l.ack?.p99, 1),
      fmt(l.usage.server?.cpu, 0),
      fmt(l.usage.postgres?.cpu, 0),
      fmt(l.cpuPerMsg.target, 0),
      fmt(l.usage.workers?.cpu, 0),
      fmt(l.generator.maxCpu, 0),
      fmt(l.generator.lag?.p99, 1),
      fmt(others(l.usage), 0),
      fmt(l.usage.server?.maxRssMb, 0),
      verdict(l),
    ]),
  );
}
