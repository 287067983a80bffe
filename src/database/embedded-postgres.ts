import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * PostgreSQL embedded in this process: PGlite served over pglite-socket on 127.0.0.1, so the
 * ordinary `pg` driver and TypeORM talk to it exactly as to a server.
 */
export class EmbeddedPostgres {
  private constructor(
    private readonly db: PGlite,
    private readonly server: PGLiteSocketServer,
    readonly url: string,
    private readonly lockFile?: string,
  ) {}

  /**
   * `dataDir` undefined → in memory (tests). `template` → start from a dumped data directory
   * (a migrated template, so each test suite skips the migrations).
   */
  static async start(opts: {
    dataDir?: string;
    template?: Blob;
    maxConnections: number;
  }): Promise<EmbeddedPostgres> {
    let lockFile: string | undefined;
    let pgDir: string | undefined;
    if (opts.dataDir) {
      const dir = resolve(opts.dataDir);
      mkdirSync(dir, { recursive: true });
      lockFile = acquireLock(dir);
      pgDir = join(dir, 'pgdata');
    }
    try {
      const db = await PGlite.create({ dataDir: pgDir, loadDataDir: opts.template });
      const server = new PGLiteSocketServer({
        db,
        host: '127.0.0.1',
        port: 0,
        // Above the pool size: extra pool connections would die with ECONNRESET otherwise.
        maxConnections: opts.maxConnections,
      });
      await server.start();
      const url = `postgres://postgres@${server.getServerConn()}/postgres`;
      return new EmbeddedPostgres(db, server, url, lockFile);
    } catch (err) {
      if (lockFile) rmSync(lockFile, { force: true });
      throw err;
    }
  }

  /** Call after the DataSource is destroyed: socket server first, then the database. */
  async stop(): Promise<void> {
    await this.server.stop();
    await this.db.close();
    if (this.lockFile) rmSync(this.lockFile, { force: true });
  }

  /** Used once by the test setup to build the migrated template. */
  dump(): Promise<Blob> {
    return this.db.dumpDataDir('none');
  }
}

/** PGlite has no lock of its own and two processes on one directory lose data: refuse the second. */
function acquireLock(dir: string): string {
  const lockFile = join(dir, 'parlor.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    if (createLockFile(lockFile)) return lockFile;
    const pid = Number(readFileSync(lockFile, 'utf8').trim());
    if (pid && pid !== process.pid && isAlive(pid)) {
      throw new Error(
        `Data directory ${dir} is already in use by another Parlor process (pid ${pid}). ` +
          `Stop it, or set PARLOR_DATA_DIR to another directory, or DATABASE_URL to a PostgreSQL server.`,
      );
    }
    rmSync(lockFile, { force: true }); // stale lock from a process that died
  }
  throw new Error(`Could not lock data directory ${dir}`);
}

/** Creates the lock file with our pid; false when it already exists. */
function createLockFile(lockFile: string): boolean {
  try {
    const fd = openSync(lockFile, 'wx', 0o600);
    writeSync(fd, String(process.pid));
    closeSync(fd);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
