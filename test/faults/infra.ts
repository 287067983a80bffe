import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Private services for the fault drills: a PostgreSQL 15 cluster and a redis-server of the
 * drill's own, on free loopback ports, so killing them touches nothing the machine shares
 * (other sessions and CI use the PostgreSQL on 5432 and the Redis on 6379).
 */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

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

/** Polls until cond holds; returns the time it took, or throws after `ms`. */
export async function until(
  cond: () => Promise<boolean> | boolean,
  ms: number,
  what: string,
  every = 100,
): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (
      await Promise.resolve()
        .then(cond)
        .catch(() => false)
    )
      return Date.now() - t0;
    await sleep(every);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

function findPgBin(): string {
  for (const v of ['17', '16', '15']) {
    const dir = `/usr/lib/postgresql/${v}/bin`;
    if (existsSync(join(dir, 'initdb'))) return dir;
  }
  throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin');
}

/** initdb refuses to run as root: as root, the cluster belongs to the `postgres` user. */
const asRoot = process.getuid?.() === 0;
function pgRun(bin: string, args: string[]): string {
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  return execFileSync(cmd, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export class PrivatePostgres {
  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly bin: string,
  ) {}

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }
  private get data(): string {
    return join(this.dir, 'data');
  }

  static async create(): Promise<PrivatePostgres> {
    const bin = findPgBin();
    const dir = mkdtempSync(join(tmpdir(), 'parlor-drill-pg-'));
    if (asRoot) {
      const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
      chownSync(dir, uid, gid);
    }
    const pg = new PrivatePostgres(dir, await freePort(), bin);
    pgRun(join(bin, 'initdb'), ['-D', pg.data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
    return pg;
  }

  /** Starts (or restarts after a crash: PostgreSQL runs its own crash recovery). */
  start(): void {
    pgRun(join(this.bin, 'pg_ctl'), [
      '-D',
      this.data,
      '-l',
      join(this.dir, 'server.log'),
      '-o',
      `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c max_connections=100`,
      '-w',
      '-t',
      '60',
      'start',
    ]);
  }

  /** The postmaster's pid, from its own pid file. */
  postmasterPid(): number | undefined {
    const file = join(this.data, 'postmaster.pid');
    if (!existsSync(file)) return undefined;
    return Number(readFileSync(file, 'utf8').split('\n')[0]);
  }

  /**
   * SIGKILL of the postmaster and every backend it started (the pids of this cluster only,
   * read from its pid file and /proc): what a machine crash or the OOM killer does.
   */
  kill(): void {
    const pm = this.postmasterPid();
    if (!pm) return;
    const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(pm)], {
      encoding: 'utf8',
    })
      .split('\n')
      .map((l) => Number(l.trim()))
      .filter((n) => n > 0);
    for (const pid of [pm, ...children]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  /** `pg_ctl stop -m immediate`: every backend aborts at once, no checkpoint. */
  stopImmediate(): void {
    pgRun(join(this.bin, 'pg_ctl'), ['-D', this.data, '-m', 'immediate', '-w', 'stop']);
  }

  async waitDown(): Promise<void> {
    await until(() => !this.isAlive(), 20_000, 'PostgreSQL to go away');
  }

  private isAlive(): boolean {
    const pm = this.postmasterPid();
    if (!pm) return false;
    try {
      process.kill(pm, 0);
      return true;
    } catch {
      return false;
    }
  }

  destroy(): void {
    try {
      if (this.isAlive()) this.stopImmediate();
    } catch {
      this.kill();
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Whether redis-server is on the PATH (PrivateRedis needs it). */
export const hasRedisServer = (() => {
  try {
    execFileSync('redis-server', ['--version']);
    return true;
  } catch {
    return false;
  }
})();

export class PrivateRedis {
  private proc?: ChildProcess;
  private constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async create(): Promise<PrivateRedis> {
    return new PrivateRedis(await freePort());
  }

  async start(): Promise<void> {
    this.proc = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    await until(() => this.ping(), 10_000, 'redis-server to answer');
  }

  /** SIGKILL: the adapter's pub/sub connections drop without a goodbye. */
  async kill(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  }

  private ping(): boolean {
    try {
      return (
        execFileSync('redis-cli', ['-p', String(this.port), 'ping'], {
          encoding: 'utf8',
        }).trim() === 'PONG'
      );
    } catch {
      return false;
    }
  }
}
