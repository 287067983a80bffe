import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  api,
  buildServer,
  killChildren,
  startServer,
  type TokensBody,
} from './support/server-process';
import { shellBlocks } from './support/markdown';

/**
 * docs/operations.md's backup and restore of the embedded data directory, executed: the
 * documented commands (its first two `sh` blocks under "Embedded database") run with bash
 * around the built server, and what the page promises about the restored state holds.
 * Always embedded, as in boot.e2e-spec.ts.
 */
const PAGE = join(process.cwd(), 'docs', 'operations.md');
const BACKUP_NAME = /parlor-data-\d{8}-\d{6}\.tar\.gz/;

function embeddedBlocks(): { backup: string; restore: string } {
  const page = readFileSync(PAGE, 'utf8');
  const section = page.slice(
    page.indexOf('### Embedded database'),
    page.indexOf('### Server PostgreSQL'),
  );
  const [backup, restore] = shellBlocks(section);
  return { backup, restore };
}

function bash(script: string, cwd: string): void {
  execFileSync('bash', ['-c', `set -euo pipefail\n${script}`], { cwd, encoding: 'utf8' });
}

let MAIN: string;
let dir: string;
beforeAll(() => {
  MAIN = join(buildServer('backup'), 'src', 'main.js');
  dir = mkdtempSync(join(tmpdir(), 'parlor-backup-'));
}, 120_000);

afterEach(killChildren);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function serverEnv(): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'test',
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    PORT: '0',
    BCRYPT_COST: '4',
    DATABASE_URL: '',
    JWT_SECRET: '', // generated into the data directory, as on a default install
    PARLOR_DATA_DIR: join(dir, 'data'),
  };
}

describe('docs/operations.md: backup and restore of the data directory', () => {
  it('restores users and sessions as they were at the backup', async () => {
    const { backup, restore } = embeddedBlocks();
    expect(backup).toContain('tar -czf');
    expect(restore).toContain('tar -xzf');

    // A user with a session, then a clean stop (the page: stop the server first).
    let server = await startServer(MAIN, serverEnv());
    const signup = await api<TokensBody>(server.url, 'POST', '/api/v1/auth/signup', {
      username: 'alice',
      email: 'alice@example.com',
      password: 'correct horse battery staple',
    });
    expect(signup.status).toBe(201);
    const token = signup.body.accessToken;
    await server.stop();
    expect(existsSync(join(dir, 'data', 'parlor.pid'))).toBe(false);

    bash(backup, dir);
    const archive = readdirSync(dir).find((f) => BACKUP_NAME.test(f));
    expect(archive).toBeDefined();

    // After the backup: the session ends.
    server = await startServer(MAIN, serverEnv());
    expect((await api(server.url, 'POST', '/api/v1/auth/logout', undefined, token)).status).toBe(
      204,
    );
    expect((await api(server.url, 'GET', '/api/v1/auth/me', undefined, token)).status).toBe(401);
    await server.stop();

    // Restore (the page's example file name stands for the archive just made).
    bash(restore.replace(BACKUP_NAME, archive!), dir);
    expect(existsSync(join(dir, 'data.before-restore'))).toBe(true);

    // As at the backup: alice exists, and her token works again (the secret came back too,
    // and the session ended after the backup is live again).
    server = await startServer(MAIN, serverEnv());
    const me = await api<{ username: string }>(
      server.url,
      'GET',
      '/api/v1/auth/me',
      undefined,
      token,
    );
    expect({ status: me.status, username: me.body.username }).toEqual({
      status: 200,
      username: 'alice',
    });
    await server.stop();
  }, 180_000);
});
