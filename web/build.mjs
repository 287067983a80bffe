/* global console, process */
/**
 * Builds the demo web client into dist/web: web/main.ts bundled with esbuild (the typed client
 * from client/ included; server code is only ever imported as types), plus the static files.
 * Run by `npm run build`; the browser tests call buildWeb() through this script as well.
 */
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export async function buildWeb(outdir = join(root, 'dist', 'web')) {
  mkdirSync(outdir, { recursive: true });
  await build({
    entryPoints: [join(root, 'web', 'main.ts')],
    outfile: join(outdir, 'app.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    sourcemap: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  for (const f of ['index.html', 'style.css']) copyFileSync(join(root, 'web', f), join(outdir, f));
  return outdir;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = await buildWeb(process.argv[2]);
  console.log(`web client built into ${out}`);
}
