/* global console, process */
/**
 * Builds the server (tsc -p tsconfig.build.json) and the demo web client (web/build.mjs) into
 * dist/, then writes dist/.build-stamp, whose mtime is the moment the build started.
 *
 *   node scripts/build.mjs             clean build: dist/ is removed first (`npm run build`)
 *   node scripts/build.mjs --if-stale  does nothing when no source is newer than the stamp
 *                                      (`npm run cli`); otherwise compiles in place, without
 *                                      removing dist/, so a server running from dist/ keeps its
 *                                      files (its static web files included)
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const stampPath = join(root, 'dist', '.build-stamp');

/** What the build reads: a change to any of these (or a file added or removed) makes dist/ stale. */
const INPUTS = [
  'src',
  'migrations',
  'client',
  'web',
  'ormconfig.ts',
  'tsconfig.json',
  'tsconfig.build.json',
];

/** Newest mtime (ms) among the inputs; directories count too (a deleted file changes its dir). */
export function newestInput() {
  let newest = 0;
  const visit = (path) => {
    let st;
    try {
      st = statSync(path);
    } catch {
      return;
    }
    newest = Math.max(newest, st.mtimeMs);
    if (st.isDirectory()) for (const name of readdirSync(path)) visit(join(path, name));
  };
  for (const input of INPUTS) visit(join(root, input));
  return newest;
}

/** True when dist/ was built after the last change to any input. */
export function isFresh() {
  try {
    return statSync(stampPath).mtimeMs > newestInput(); // equal: coarse clock, rebuild
  } catch {
    return false;
  }
}

export async function build({ clean }) {
  const started = new Date();
  if (clean) rmSync(join(root, 'dist'), { recursive: true, force: true });
  else rmSync(stampPath, { force: true }); // a failed build must not leave dist/ looking fresh
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const res = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], {
    stdio: 'inherit',
    cwd: root,
  });
  if (res.status !== 0) throw new Error(`tsc exited ${res.status ?? res.signal}`);
  const { buildWeb } = await import('../web/build.mjs');
  await buildWeb();
  writeFileSync(stampPath, `${started.toISOString()}\n`);
  utimesSync(stampPath, started, started);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const ifStale = process.argv.includes('--if-stale');
  if (ifStale && isFresh()) process.exit(0);
  if (ifStale) console.error('dist/ is older than the sources: compiling (in place)');
  build({ clean: !ifStale }).catch((err) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  });
}
