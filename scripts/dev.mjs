/* global console, process, setInterval */
/**
 * `npm run start:dev` (and `start:debug`, which passes --inspect): the server restarted on
 * every change. `tsc -w` recompiles changed sources into dist/; `node --watch` restarts
 * dist/src/main.js when a file it loaded changes (it stops the old server with SIGTERM and waits,
 * so the embedded database's lock is released before the new one starts). The server is first
 * started once tsc's initial compile is done. The demo web client is built once at start.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { root } from './build.mjs';

const inspect = process.argv.slice(2).filter((a) => a.startsWith('--inspect'));
const tscBin = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const children = new Set();
let stopping = false;

function run(args, opts) {
  const child = spawn(process.execPath, args, { cwd: root, ...opts });
  children.add(child);
  child.on('exit', (code, signal) => {
    children.delete(child);
    if (!stopping) {
      console.error(`${args.join(' ')} exited (${code ?? signal}); stopping`);
      stop(1);
    } else if (children.size === 0) process.exit(process.exitCode ?? 0);
  });
  return child;
}

function stop(code) {
  if (stopping) return;
  stopping = true;
  process.exitCode = code;
  if (children.size === 0) process.exit(code);
  for (const child of children) child.kill('SIGTERM');
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));
// `kill <npm's pid>` stops npm and its shell but not this process: stop when orphaned too.
const parent = process.ppid;
setInterval(() => process.ppid !== parent && stop(0), 1000).unref();

const { buildWeb } = await import('../web/build.mjs');
await buildWeb();

const tsc = run([tscBin, '-w', '-p', join(root, 'tsconfig.build.json'), '--preserveWatchOutput'], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
let server;
tsc.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  // "Found 0 errors. Watching for file changes." ends every compile, the first one included.
  if (!server && !stopping && /Watching for file changes/.test(String(chunk))) {
    server = run(['--watch', '--enable-source-maps', ...inspect, join('dist', 'src', 'main.js')], {
      stdio: 'inherit',
    });
  }
});
