/**
 * Offered load stepped up until a target fails (p99 > 500 ms or delivery < 99.9 %), the targets
 * alternating at every level (A/B, then B/A) so slow drifts of the machine hit both alike.
 */
import type { Fleet, StepResult } from './fleet';
import type { Database } from './servers';
import { type GroupUsage, Usage, waitQuiet } from './usage';
import { fmt, log, sleep, table } from './util';

export const P99_LIMIT_MS = 500;
export const DELIVERY_MIN = 0.999;

export interface Target {
  /** Label in tables (e.g. `reference`, `parlor`, `1 instance`). */
  name: string;
  /** Worker connection group. */
  group: string;
  /** Processes whose CPU/RSS is sampled during a step, by role (server, postgres, redis, …). */
  processes: () => Promise<Record<string, number[]>>;
  /** Persisted rows are counted in PostgreSQL for targets that write (Parlor). */
  db?: Database;
  profile?: { start: () => Promise<void>; stop: (file: string) => Promise<void> };
}

export interface Level extends StepResult {
  target: string;
  usage: Record<string, GroupUsage>;
  /** Rows of this step found in PostgreSQL after the drain (null: no database). */
  persisted: number | null;
  /** Persisted (or, without a database, acknowledged broadcast) messages per second. */
  throughput: number;
  pass: boolean;
  why: string;
}

export interface LoadShape {
  shape: string;
  payloadBytes: number;
  fanout: number;
  durationMs: number;
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
  const usage = new Usage({ ...procs, workers: workerPids }, () => t.processes());
  await usage.begin();
  if (profileFile) await t.profile?.start();
  const step = await fleet.step({
    group: t.group,
    shape: shape.shape,
    rate,
    durationMs: shape.durationMs,
    payloadBytes: shape.payloadBytes,
    fanout: shape.fanout,
    drainMs: shape.drainMs,
    label: `${t.name} ${shape.shape} ${shape.payloadBytes} B @ ${Math.round(rate)}/s`,
  });
  if (profileFile) await t.profile?.stop(profileFile);
  const used = await usage.end();
  let persisted: number | null = null;
  if (t.db) {
    const [r] = await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM messages WHERE id > $1 AND role = 'user' AND content LIKE $2`,
      [mark, `${step.id}|%`],
    );
    persisted = r.n;
  }
  const seconds = shape.durationMs / 1000;
  const throughput = (persisted ?? step.acked) / seconds;
  const p99 = step.latency?.p99 ?? Infinity;
  const why: string[] = [];
  if (p99 > P99_LIMIT_MS) why.push(`p99 ${fmt(p99, 0)} ms`);
  if (step.delivery < DELIVERY_MIN) why.push(`delivery ${fmt(step.delivery * 100, 2)} %`);
  if (step.acked < step.sent) why.push(`${step.sent - step.acked} unacked`);
  if (persisted !== null && persisted < step.acked) why.push(`${step.acked - persisted} not in db`);
  await sleep(shape.settleMs);
  return {
    ...step,
    target: t.name,
    usage: used,
    persisted,
    throughput,
    pass: why.length === 0,
    why: why.join(', '),
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
    `other work on the host ${fmt(others(l.usage), 0)} %` +
    (l.pass ? '' : `  FAIL (${l.why})`)
  );
}

/** The highest level that passed (its throughput), and whether a failure bounded it. */
export function sustained(levels: Level[], target: string): { max: number; bounded: boolean } {
  const mine = levels.filter((l) => l.target === target);
  const passed = mine.filter((l) => l.pass);
  return {
    max: passed.length ? Math.max(...passed.map((l) => l.throughput)) : 0,
    bounded: mine.some((l) => !l.pass),
  };
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
      'wrk CPU%',
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
      fmt(l.usage.workers?.cpu, 0),
      fmt(others(l.usage), 0),
      fmt(l.usage.server?.maxRssMb, 0),
      l.pass ? 'yes' : `no: ${l.why}`,
    ]),
  );
}
