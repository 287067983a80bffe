/**
 * SVG charts of a run, rendered in Node with vega-lite (the spec) and vega (the renderer, no
 * canvas, no browser). Both are ESM-only: loaded with import(), which the CommonJS bundle of
 * the harness keeps as it is.
 */
import type { Level } from './stepper';
import { P99_LIMIT_MS } from './stepper';

export interface ChartPanel {
  title: string;
  levels: Level[];
}

type Status = 'passed' | 'failed' | 'generator-bound';

interface Point {
  panel: string;
  target: string;
  offered: number;
  percentile: 'p50' | 'p99';
  ms: number;
  status: Status;
}

/**
 * p50 and p99 against offered load (both axes log scale), one line per target and percentile,
 * one panel per room shape and payload, the pass threshold (p99 ≤ 500 ms) drawn; a level's
 * marker says whether it passed, failed, or was generator-bound.
 */
export async function latencyChart(panels: ChartPanel[], title = ''): Promise<string> {
  const points: Point[] = panels.flatMap((p) =>
    p.levels.flatMap((l) => {
      const status: Status = l.pass ? 'passed' : l.generatorBound ? 'generator-bound' : 'failed';
      const base = { panel: p.title, target: l.target, offered: Math.round(l.offered), status };
      return l.latency
        ? [
            { ...base, percentile: 'p50' as const, ms: Math.max(0.01, l.latency.p50) },
            { ...base, percentile: 'p99' as const, ms: Math.max(0.01, l.latency.p99) },
          ]
        : [];
    }),
  );
  const x = {
    field: 'offered',
    type: 'quantitative' as const,
    scale: { type: 'log' as const },
    title: 'offered load (messages/s)',
  };
  const y = {
    field: 'ms',
    type: 'quantitative' as const,
    scale: { type: 'log' as const },
    title: 'latency, scheduled send → each receiver (ms)',
  };
  const color = {
    field: 'target',
    type: 'nominal' as const,
    title: 'target',
    scale: { domain: ['reference', 'parlor'], range: ['#4c78a8', '#e45756'] },
  };
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title || 'fanout: latency against offered load', anchor: 'start' as const },
    background: 'white',
    data: { values: points },
    facet: {
      field: 'panel',
      type: 'nominal' as const,
      title: null,
      sort: panels.map((p) => p.title),
    },
    columns: 2,
    // Each panel's load range is its own; latency on one scale, so panels compare.
    resolve: { scale: { x: 'independent' as const } },
    spec: {
      width: 380,
      height: 260,
      layer: [
        {
          mark: { type: 'line' as const, strokeWidth: 1.5 },
          encoding: {
            x,
            y,
            color,
            strokeDash: {
              field: 'percentile',
              type: 'nominal' as const,
              title: 'percentile',
              scale: {
                domain: ['p50', 'p99'],
                range: [
                  [4, 3],
                  [1, 0],
                ],
              },
            },
          },
        },
        {
          mark: { type: 'point' as const, filled: true, size: 45 },
          encoding: {
            x,
            y,
            color,
            shape: {
              field: 'status',
              type: 'nominal' as const,
              title: 'step',
              scale: {
                domain: ['passed', 'failed', 'generator-bound'],
                range: ['circle', 'cross', 'triangle-up'],
              },
            },
            tooltip: [
              { field: 'target' },
              { field: 'percentile' },
              { field: 'offered' },
              { field: 'ms' },
              { field: 'status' },
            ],
          },
        },
        {
          mark: { type: 'rule' as const, color: '#888', strokeDash: [6, 4] },
          encoding: { y: { datum: P99_LIMIT_MS } },
        },
        {
          // One label per panel (not one per data row).
          transform: [{ aggregate: [{ op: 'count' as const, as: 'n' }], groupby: ['panel'] }],
          mark: {
            type: 'text' as const,
            align: 'left' as const,
            dx: 4,
            dy: -6,
            color: '#666',
            fontSize: 10,
          },
          encoding: {
            x: { value: 0 },
            y: { datum: P99_LIMIT_MS },
            text: { value: `pass: p99 ≤ ${P99_LIMIT_MS} ms` },
          },
        },
      ],
    },
    config: { font: 'sans-serif' },
  };
  const vl = await import('vega-lite');
  const vega = await import('vega');
  const { spec: compiled } = vl.compile(spec);
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
