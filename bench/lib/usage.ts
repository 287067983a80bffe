import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import pidusage from 'pidusage';

/**
 * CPU and memory of groups of processes over a window (a load step): CPU % from the change in
 * user+system time (100 % = one core), RSS as the largest sum seen across periodic samples.
 * With `refresh`, the groups are looked up again at every sample, so processes that start
 * during the window (PostgreSQL backends of a pool that reconnects) are counted from zero.
 */
export interface GroupUsage {
  cpu: number;
  /** CPU time (user + system) over the window, in ms: `cpu` before dividing by the wall time. */
  cpuMs: number;
  maxRssMb: number;
}

type Groups = Record<string, number[]>;
interface Seen {
  first: number;
  last: number;
}

async function sample(pids: number[]): Promise<Map<number, { ctime: number; memory: number }>> {
  const out = new Map<number, { ctime: number; memory: number }>();
  await Promise.all(
    pids.map(async (pid) => {
      try {
        const s = await pidusage(pid);
        out.set(pid, { ctime: s.ctime, memory: s.memory });
      } catch {
        // gone: it keeps the CPU time it was last seen with
      }
    }),
  );
  return out;
}

export class Usage {
  private readonly seen = new Map<string, Map<number, Seen>>();
  private readonly maxRss = new Map<string, number>();
  private t0 = 0;
  private stat0 = machineTicks();
  private timer?: NodeJS.Timeout;
  private polling?: Promise<void>;

  constructor(
    private groups: Groups,
    private readonly refresh?: () => Promise<Groups>,
  ) {}

  async begin(): Promise<void> {
    this.t0 = Date.now();
    this.stat0 = machineTicks();
    await this.poll(true);
    this.timer = setInterval(() => {
      this.polling ??= this.poll(false).finally(() => (this.polling = undefined));
    }, 500);
  }

  private async poll(initial: boolean): Promise<void> {
    if (!initial && this.refresh) {
      try {
        const fresh = await this.refresh();
        for (const [name, pids] of Object.entries(fresh))
          this.groups[name] = [...new Set([...(this.groups[name] ?? []), ...pids])];
      } catch {
        // keep the groups we had
      }
    }
    for (const [name, pids] of Object.entries(this.groups)) {
      const s = await sample(pids);
      const seen = this.seen.get(name) ?? new Map<number, Seen>();
      this.seen.set(name, seen);
      let rss = 0;
      for (const [pid, v] of s) {
        rss += v.memory;
        const prev = seen.get(pid);
        // A process first seen after the window opened started inside it: count from zero.
        if (prev) prev.last = v.ctime;
        else seen.set(pid, { first: initial ? v.ctime : 0, last: v.ctime });
      }
      this.maxRss.set(name, Math.max(this.maxRss.get(name) ?? 0, rss));
    }
  }

  async end(): Promise<Record<string, GroupUsage>> {
    clearInterval(this.timer);
    await this.polling;
    await this.poll(false);
    const wall = Math.max(1, Date.now() - this.t0);
    const result: Record<string, GroupUsage> = {};
    for (const name of Object.keys(this.groups)) {
      let cpuMs = 0;
      for (const v of this.seen.get(name)?.values() ?? []) cpuMs += v.last - v.first;
      result[name] = {
        cpu: Math.round((cpuMs / wall) * 1000) / 10,
        cpuMs,
        maxRssMb: Math.round((this.maxRss.get(name) ?? 0) / 1048576),
      };
    }
    // Everything the machine ran in the window, in the same unit (100 % = one core): what
    // other work on the host (not this harness) took shows as machine minus the groups.
    const stat1 = machineTicks();
    const total = stat1.total - this.stat0.total;
    const busy = stat1.busy - this.stat0.busy;
    result.machine = {
      cpu: total > 0 ? Math.round((busy / total) * cpus().length * 1000) / 10 : 0,
      cpuMs: total > 0 ? (busy / total) * cpus().length * wall : 0,
      maxRssMb: 0,
    };
    pidusage.clear();
    return result;
  }
}

/** Busy and total CPU ticks of the whole machine (/proc/stat). */
function machineTicks(): { busy: number; total: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
  } catch {
    return { busy: 0, total: 0 };
  }
}

/**
 * Waits until the processes use less than `maxCpu` % over a 500 ms window (a server still
 * draining the backlog of an overloaded step would skew the next one), at most `maxMs`.
 */
export async function waitQuiet(pids: number[], maxCpu: number, maxMs: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < maxMs) {
    const u = new Usage({ p: pids });
    await u.begin();
    await new Promise((r) => setTimeout(r, 500));
    const { p } = await u.end();
    if (p.cpu < maxCpu) break;
  }
  return Date.now() - t0;
}
