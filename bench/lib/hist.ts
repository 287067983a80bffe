/**
 * A latency histogram preallocated once (one Uint32Array of counts) so that recording a value
 * allocates nothing: the load workers record one value per delivery, at tens of thousands per
 * second, and must not spend their CPU on the measurement itself.
 *
 * Log-linear buckets over microseconds, as HdrHistogram does: exact below 2048 µs, then 1024
 * buckets per power of two (relative error < 0.1 %, i.e. 3 significant digits), up to 10 min.
 * Percentiles report a bucket's highest value, as HdrHistogram's `getValueAtPercentile` does.
 */

/** Latencies are recorded in microseconds, from 1 µs up to 10 minutes. */
const MAX_US = 600_000_000;
const SUB_BITS = 10;
const SUB = 1 << SUB_BITS; // 1024
/** Enough buckets for MAX_US (< 2^30): index < (30 − SUB_BITS + 1) × SUB. */
const BUCKETS = (31 - SUB_BITS) * SUB;

export class Histogram {
  readonly counts = new Uint32Array(BUCKETS);
  totalCount = 0;
  maxValue = 0;
  private sum = 0;

  /** Records a value in microseconds (clamped to 1 µs … 10 min). */
  recordValue(us: number): void {
    const v = us < 1 ? 1 : us > MAX_US ? MAX_US : Math.round(us);
    this.counts[bucketOf(v)]++;
    this.totalCount++;
    this.sum += v;
    if (v > this.maxValue) this.maxValue = v;
  }

  get mean(): number {
    return this.totalCount ? this.sum / this.totalCount : 0;
  }

  /** The value (µs) below which `p` % of the recorded values fall. */
  getValueAtPercentile(p: number): number {
    if (!this.totalCount) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.totalCount));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.min(highestOf(i), this.maxValue);
    }
    return this.maxValue;
  }

  add(other: Histogram | EncodedHistogram): void {
    const e = other instanceof Histogram ? other.encode() : other;
    for (let j = 0; j < e.b.length; j++) this.counts[e.b[j]] += e.c[j];
    this.totalCount += e.n;
    this.sum += e.sum;
    this.maxValue = Math.max(this.maxValue, e.max);
  }

  reset(): void {
    this.counts.fill(0);
    this.totalCount = 0;
    this.maxValue = 0;
    this.sum = 0;
  }

  /** Kept for callers written against HdrHistogram: nothing to free. */
  destroy(): void {}

  encode(): EncodedHistogram {
    const b: number[] = [];
    const c: number[] = [];
    for (let i = 0; i < BUCKETS; i++) {
      if (this.counts[i]) {
        b.push(i);
        c.push(this.counts[i]);
      }
    }
    return { b, c, n: this.totalCount, sum: this.sum, max: this.maxValue };
  }
}

/** A histogram as it crosses the IPC channel: the non-empty buckets and their counts. */
export interface EncodedHistogram {
  b: number[];
  c: number[];
  n: number;
  sum: number;
  max: number;
}

function bucketOf(v: number): number {
  if (v < 2 * SUB) return v;
  const e = 31 - Math.clz32(v) - SUB_BITS; // v in [2^(e+10), 2^(e+11))
  return e * SUB + (v >>> e);
}

function highestOf(i: number): number {
  if (i < 2 * SUB) return i;
  const e = (i >>> SUB_BITS) - 1;
  return ((i - e * SUB) << e) + (1 << e) - 1;
}

export function newHistogram(): Histogram {
  return new Histogram();
}

/** Records a latency given in milliseconds. */
export function recordMs(h: Histogram, ms: number): void {
  h.recordValue(ms * 1000);
}

export const encode = (h: Histogram): EncodedHistogram => h.encode();

/** Merges encoded histograms (one per worker) into one. */
export function merge(encoded: EncodedHistogram[]): Histogram {
  const total = newHistogram();
  for (const e of encoded) total.add(e);
  return total;
}

export interface Percentiles {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/** Percentiles in milliseconds (null when nothing was recorded). */
export function percentiles(h: Histogram): Percentiles | null {
  if (h.totalCount === 0) return null;
  const ms = (us: number) => Math.round(us) / 1000;
  return {
    count: h.totalCount,
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)),
    max: ms(h.maxValue),
    mean: ms(h.mean),
  };
}

/** Percentiles of plain samples in milliseconds (small request loops: history, login). */
export function samplePercentiles(samples: number[]): Percentiles | null {
  if (!samples.length) return null;
  const h = newHistogram();
  for (const s of samples) recordMs(h, s);
  return percentiles(h);
}
