/** Small helpers shared by the harness's processes. */

/**
 * Milliseconds on CLOCK_MONOTONIC (process.hrtime), with sub-millisecond precision. The same
 * clock in every process on this host, so a time taken in a sender worker can be compared with
 * one taken in a receiver worker.
 */
export function mono(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Resolves with `p`, or rejects after `ms` with a message naming `what`. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `work` for every item with at most `limit` in flight; results in input order. */
export async function pool<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T, index: number) => Promise<R>,
  onDone?: (done: number) => void,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let done = 0;
  const runner = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i], i);
      onDone?.(++done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, runner));
  return results;
}

/**
 * A one-line progress bar on stderr (redrawn in place on a terminal; on a pipe, as in CI, one
 * line per quarter so logs stay short).
 */
export class Progress {
  private readonly tty = Boolean(process.stderr.isTTY);
  private readonly t0 = Date.now();
  private lastQuarter = -1;
  private lastDraw = 0;

  constructor(
    private readonly label: string,
    private readonly total: number,
    /** Draw on a terminal only: on a pipe the caller logs its own line. */
    private readonly ttyOnly = false,
  ) {
    this.update(0);
  }

  update(done: number, note = ''): void {
    const frac = this.total > 0 ? Math.min(1, done / this.total) : 1;
    if (this.tty) {
      const now = Date.now();
      if (now - this.lastDraw < 100 && done < this.total) return;
      this.lastDraw = now;
      const width = 30;
      const filled = Math.round(frac * width);
      const bar = '#'.repeat(filled) + '.'.repeat(width - filled);
      const secs = ((now - this.t0) / 1000).toFixed(1);
      process.stderr.write(
        `\r  ${this.label} [${bar}] ${done}/${this.total} ${secs}s ${note}`.padEnd(100) + '\r',
      );
    } else if (!this.ttyOnly) {
      const quarter = Math.floor(frac * 4);
      if (quarter > this.lastQuarter) {
        this.lastQuarter = quarter;
        process.stderr.write(`  ${this.label}: ${done}/${this.total} ${note}\n`);
      }
    }
  }

  finish(note = ''): void {
    const secs = ((Date.now() - this.t0) / 1000).toFixed(1);
    if (this.tty) process.stderr.write(`\r${' '.repeat(100)}\r`);
    if (this.ttyOnly) return;
    process.stderr.write(`  ${this.label}: ${this.total} done in ${secs} s ${note}\n`);
  }
}

export function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** Fixed-width table for stdout. */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [
    line(cells[0]),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...cells.slice(1).map(line),
  ].join('\n');
}

export function fmt(n: number | null | undefined, digits = 1): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  return n.toFixed(digits);
}

export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a === null || a === undefined || b === null || b === undefined || b === 0) return null;
  return a / b;
}
