// `npm run bench -- <scenario> [flags]`: bundles the TypeScript harness with esbuild (already a
// dev dependency; relative imports such as ../client are bundled, packages stay external) into
// .bench-build/bench, then runs it. The server under test is compiled separately with tsc (see
// bench/lib/servers.ts), because Nest needs decorator metadata that esbuild does not emit.
import { build } from 'esbuild';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, '.bench-build', 'bench');

await build({
  absWorkingDir: root,
  entryPoints: {
    main: 'bench/main.ts',
    worker: 'bench/worker.ts',
    'reference-server': 'bench/reference-server/index.ts',
    'server-hook': 'bench/server-hook.ts',
    'bcrypt-raw': 'bench/bcrypt-raw.ts',
    'redis-subscriber': 'bench/redis-subscriber.ts',
  },
  outdir,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  packages: 'external',
  sourcemap: 'inline',
  logLevel: 'warning',
});

const child = spawn(
  process.execPath,
  ['--enable-source-maps', join(outdir, 'main.js'), ...process.argv.slice(2)],
  { stdio: 'inherit', cwd: root },
);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
