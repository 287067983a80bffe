import * as hdr from 'hdr-histogram-js';

/** Latencies are recorded in microseconds, from 1 µs up to 10 minutes, 3 significant digits. */
const MAX_US = 600_000_000;

export type Histogram = hdr.Histogram;

export function newHistogram(): Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: MAX_US,
    numberOfSignificantValueDigits: 3,
    autoResize: false,
  });
}

/** Records a latency given in milliseconds. */
export function recordMs(h: Histogram, ms: number): void {
  h.recordValue(Math.min(MAX_US, Math.max(1, Math.round(ms * 1000))));
}

export const encode = (h: Histogram): string => hdr.encodeIntoCompressedBase64(h);

/** Merges encoded histograms (one per worker) into one. */
export function merge(encoded: string[]): Histogram {
  const total = newHistogram();
  for (const e of encoded) {
    const h = hdr.decodeFromCompressedBase64(e, 32, false);
    total.add(h);
    h.destroy();
  }
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

/** Percentiles in milliseconds (null fields when nothing was recorded). */
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
  const p = percentiles(h);
  h.destroy();
  return p;
}
