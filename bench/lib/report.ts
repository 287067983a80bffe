import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { git, ROOT } from './servers';
import { log } from './util';

export const RESULTS = join(ROOT, 'bench', 'results');

export function machine() {
  const c = cpus();
  return {
    cpus: c.length,
    cpuModel: c[0]?.model ?? 'unknown',
    memGb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    /** 1-minute load average at the start: other work on the machine shows up here. */
    loadAvg1m: Math.round(loadavg()[0] * 100) / 100,
  };
}

/** Writes bench/results/<scenario>-<timestamp>.json (git-ignored) and returns its path. */
export function saveResult(scenario: string, data: Record<string, unknown>): string {
  mkdirSync(RESULTS, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = join(RESULTS, `${scenario}-${stamp}.json`);
  const body = {
    scenario,
    date: new Date().toISOString(),
    commit: git(['rev-parse', 'HEAD']),
    machine: machine(),
    ...data,
  };
  writeFileSync(file, JSON.stringify(body, null, 2) + '\n');
  log(`\nresults: ${file}`);
  return file;
}
