/**
 * The processes under test: the built Parlor server (child processes, as operators run it), the
 * bare reference server, a private redis-server, and a throwaway PostgreSQL database per run.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import { log, sleep } from './util';

export const ROOT = resolve(__dirname, '..', '..');
export const BUILD = join(ROOT, '.bench-build');
const HOOK = join(BUILD, 'bench', 'server-hook.js');
const REFERENCE = join(BUILD, 'bench', 'reference-server.js');
const BOOT_TIMEOUT_MS = 60_000;

const live = new Set<ChildProcess>();
/** Last resort (Ctrl-C, crash): no server, worker or redis-server outlives the run. */
export function killAll(): void {
  for (const p of live) p.kill('SIGKILL');
}

export function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

export interface ServerBuild {
  main: string;
  /** What was built: `<commit>`, or `<commit>+worktree` when src/ had uncommitted changes. */
  source: string;
}

/**
 * Compiles the server with tsc (Nest needs decorator metadata, which esbuild does not emit):
 * - `worktree` (default): the working tree → .bench-build/server;
 * - a git revision (e.g. `HEAD`): that commit's sources, exported with `git archive`, so a
 *   measurement names exactly the commit it measured;
 * - `dist`: use an existing `npm run build` (CI, right after its build step).
 */
export function buildServer(which: string): ServerBuild {
  const head = git(['rev-parse', '--short', 'HEAD']) || 'unknown';
  if (which === 'dist') {
    const main = join(ROOT, 'dist', 'src', 'main.js');
    if (!existsSync(main))
      throw new Error('dist/src/main.js is missing: run `npm run build` first');
    return { main, source: `${head} (dist)` };
  }
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  let project = join(ROOT, 'tsconfig.build.json');
  let source = head;
  let outDir = join(BUILD, 'server');
  if (which === 'worktree') {
    const dirty = git(['status', '--porcelain', '--', 'src', 'migrations', 'ormconfig.ts']);
    if (dirty) source = `${head}+worktree`;
  } else {
    const commit = git(['rev-parse', '--short', which]);
    if (!commit) throw new Error(`unknown git revision: ${which}`);
    const tree = join(BUILD, `src-${commit}`);
    rmSync(tree, { recursive: true, force: true });
    mkdirSync(tree, { recursive: true });
    const paths = ['src', 'migrations', 'ormconfig.ts', 'tsconfig.json', 'tsconfig.build.json'];
    execFileSync('sh', ['-c', `git archive ${commit} ${paths.join(' ')} | tar -x -C "${tree}"`], {
      cwd: ROOT,
    });
    project = join(tree, 'tsconfig.build.json');
    outDir = join(BUILD, `server-${commit}`);
    source = commit;
  }
  rmSync(outDir, { recursive: true, force: true });
  const t0 = Date.now();
  try {
    execFileSync(process.execPath, [tsc, '-p', project, '--outDir', outDir], {
      cwd: ROOT,
      encoding: 'utf8',
    });
  } catch (err) {
    throw new Error(`tsc failed:\n${(err as { stdout?: string }).stdout ?? ''}`, { cause: err });
  }
  log(`  server compiled (${source}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return { main: join(outDir, 'src', 'main.js'), source };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
      .once('error', reject)
      .listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as { port: number };
        srv.close(() => resolve(port));
      });
  });
}

export interface Database {
  url: string;
  name: string;
  query<T extends object>(sql: string, params?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

/** A throwaway database on the server at `baseUrl`, dropped (WITH FORCE) by `drop()`. */
export async function createDatabase(baseUrl: string): Promise<Database> {
  const name = `parlor_bench_${randomBytes(4).toString('hex')}`;
  const admin = new Client({ connectionString: baseUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  const client = new Client({ connectionString: url.toString() });
  await client.connect();
  let dropped = false;
  return {
    url: url.toString(),
    name,
    async query<T extends object>(sql: string, params: unknown[] = []) {
      return (await client.query<T>(sql, params)).rows;
    },
    async drop() {
      if (dropped) return;
      dropped = true;
      await client.end().catch(() => undefined);
      const a = new Client({ connectionString: baseUrl });
      await a.connect();
      try {
        await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await a.end();
      }
    },
  };
}

export interface MemoryUsage {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

export interface ServerProc {
  label: string;
  url: string;
  pid: number;
  proc: ChildProcess;
  output: () => string;
  /** Full GC in the server, then its memory usage. */
  gc(): Promise<MemoryUsage>;
  profileStart(): Promise<void>;
  profileStop(file: string): Promise<void>;
  heapSnapshot(file: string): Promise<void>;
  stop(): Promise<void>;
}

/** Spawns `node --expose-gc -r server-hook.js <script>`, resolves once it prints its URL. */
async function startNode(
  label: string,
  script: string,
  env: NodeJS.ProcessEnv,
  listening: RegExp,
  nodeArgs: string[] = [],
): Promise<ServerProc> {
  const proc = spawn(process.execPath, [...nodeArgs, '--expose-gc', '-r', HOOK, script], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  live.add(proc);
  let out = '';
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const exited = new Promise<void>((res) =>
    proc.once('exit', () => {
      live.delete(proc);
      res();
    }),
  );
  const url = await new Promise<string>((res, rej) => {
    const timer = setTimeout(
      () => rej(new Error(`${label} did not start:\n${out}`)),
      BOOT_TIMEOUT_MS,
    );
    const check = () => {
      const m = listening.exec(out);
      if (m) {
        clearTimeout(timer);
        res(m[1]);
      }
    };
    proc.stdout!.on('data', check);
    void exited.then(() => {
      clearTimeout(timer);
      rej(new Error(`${label} exited before listening:\n${out}`));
    });
  });

  let nextId = 0;
  const pending = new Map<number, { res: (v: unknown) => void; rej: (e: Error) => void }>();
  proc.on('message', (m: { id: number; ok: boolean; result?: unknown; error?: string }) => {
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (m.ok) p?.res(m.result);
    else p?.rej(new Error(`${label}: ${m.error}`));
  });
  const ask = <T>(cmd: object, timeoutMs = 60_000): Promise<T> =>
    new Promise<T>((res, rej) => {
      const id = ++nextId;
      const timer = setTimeout(() => {
        pending.delete(id);
        rej(new Error(`${label}: no answer to ${JSON.stringify(cmd)}`));
      }, timeoutMs);
      pending.set(id, {
        res: (v) => {
          clearTimeout(timer);
          res(v as T);
        },
        rej: (e) => {
          clearTimeout(timer);
          rej(e);
        },
      });
      proc.send({ id, ...cmd });
    });

  return {
    label,
    url,
    pid: proc.pid!,
    proc,
    output: () => out,
    gc: () => ask<MemoryUsage>({ cmd: 'gc' }),
    profileStart: () => ask<void>({ cmd: 'profile-start' }),
    profileStop: (file) => ask<void>({ cmd: 'profile-stop', file }),
    heapSnapshot: (file) => ask<void>({ cmd: 'heap-snapshot', file }, 300_000),
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export const ADMIN = {
  username: 'benchadmin',
  email: 'benchadmin@example.com',
  password: 'bench-admin-password',
};

export interface ParlorOptions {
  databaseUrl: string;
  jwtSecret: string;
  bcryptCost: number;
  poolSize?: number;
  redisUrl?: string;
  extraEnv?: Record<string, string>;
}

/**
 * Parlor as in production (NODE_ENV=production, JSON logs at warn) with the limits a load test
 * needs raised: send rate limits, auth throttles, sockets per user, token lifetime. BCRYPT_COST
 * as asked (cheap for seeding, the configured cost for `login`).
 */
export function startParlor(label: string, main: string, o: ParlorOptions): Promise<ServerProc> {
  const dataDir = mkdtempSync(join(tmpdir(), 'parlor-bench-'));
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    PORT: '0',
    PARLOR_DATA_DIR: dataDir,
    DATABASE_URL: o.databaseUrl,
    ...(o.poolSize ? { DATABASE_POOL_SIZE: String(o.poolSize) } : {}),
    JWT_SECRET: o.jwtSecret,
    ACCESS_TOKEN_TTL: '12h',
    BCRYPT_COST: String(o.bcryptCost),
    AUTH_THROTTLE_IP_LIMIT: '100000000',
    AUTH_THROTTLE_USER_LIMIT: '100000000',
    AUTH_THROTTLE_ACCOUNT_LIMIT: '100000000',
    WS_SEND_RATE_PER_SOCKET: '100000000',
    WS_SEND_RATE_PER_USER: '100000000',
    // The names since the per-user limits (the old ones above still serve older revisions).
    RATE_LIMIT_SEND: '100000000',
    RATE_LIMIT_EDIT: '100000000',
    RATE_LIMIT_REACT: '100000000',
    RATE_LIMIT_ROOMS: '100000000',
    RATE_LIMIT_TYPING: '100000000',
    RATE_LIMIT_READ: '100000000',
    RATE_LIMIT_ADMIN: '100000000',
    USER_MAX_INFLIGHT: '100000000',
    WS_MAX_SOCKETS_PER_USER: '100000',
    ADMIN_USERNAME: ADMIN.username,
    ADMIN_EMAIL: ADMIN.email,
    ADMIN_PASSWORD: ADMIN.password,
    ...(o.redisUrl ? { REDIS_URL: o.redisUrl } : {}),
    ...o.extraEnv,
  };
  return startNode(label, main, env, /Parlor listening on (http:\/\/\S+)/).then((s) => {
    const stop = s.stop.bind(s);
    s.stop = async () => {
      await stop();
      rmSync(dataDir, { recursive: true, force: true });
    };
    return s;
  });
}

export function startReference(label = 'reference'): Promise<ServerProc> {
  return startNode(
    label,
    REFERENCE,
    { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: '0' },
    /reference listening on (http:\/\/\S+)/,
  );
}

/** A private redis-server on a free port (no persistence); `stop()` kills it. */
export async function startRedis(): Promise<{
  url: string;
  pid: number;
  stop: () => Promise<void>;
}> {
  const port = await freePort();
  const proc = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  live.add(proc);
  const exited = new Promise<void>((res) => proc.once('exit', () => res()));
  proc.once('error', () => undefined);
  // Ready when it accepts a PING.
  for (let i = 0; i < 50; i++) {
    await sleep(100);
    try {
      execFileSync('redis-cli', ['-p', String(port), 'ping'], { stdio: 'ignore' });
      break;
    } catch {
      if (proc.exitCode !== null) throw new Error('redis-server exited at start');
    }
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    pid: proc.pid!,
    async stop() {
      proc.kill('SIGKILL');
      await exited;
      live.delete(proc);
    },
  };
}

export function track(proc: ChildProcess): void {
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
}
