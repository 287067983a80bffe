import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  api,
  buildServer,
  type Exit,
  killChildren,
  launch,
  runServerToExit,
  startServer,
  type TokensBody,
  type UserBody,
} from './support/server-process';

/**
 * The built server as operators run it (`node dist/src/main.js`), in child processes on the
 * embedded database: configuration errors at boot, data surviving a restart, the data
 * directory lock, and the admin CLI. Always embedded, even in CI's server-PostgreSQL run:
 * these behaviours belong to embedded mode.
 */
/** Per test: several boots of the real server each (Jest's global 30 s is too short). */
const TEST_TIMEOUT_MS = 180_000; // the CLI test builds the app first (`--if-stale`): slow on a busy runner

const tempDirs: string[] = [];

function tempDataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'parlor-boot-'));
  tempDirs.push(dir);
  return dir;
}

/**
 * A clean environment: nothing inherited but PATH and HOME, and the database and secret
 * variables explicitly empty ("use the default") so a developer's `.env` cannot point these
 * tests at a server or fix the JWT secret.
 */
function serverEnv(dataDir: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'test',
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    PORT: '0',
    BCRYPT_COST: '4',
    DATABASE_URL: '',
    JWT_SECRET: '',
    PARLOR_DATA_DIR: dataDir,
    ...extra,
  };
}

/** A clean stop: Nest's shutdown hooks ran (exit 0, or re-raised SIGTERM) and the lock is gone. */
function expectCleanStop(exit: Exit, dataDir: string): void {
  expect(exit.code === 0 || exit.signal === 'SIGTERM').toBe(true);
  expect(existsSync(join(dataDir, 'parlor.pid'))).toBe(false);
}

let build: string;
let MAIN: string;
let CLI: string;
beforeAll(() => {
  // Test what `npm start` runs: compile the current sources once.
  build = buildServer('boot');
  MAIN = join(build, 'src', 'main.js');
  CLI = join(build, 'src', 'cli.js');
}, 120_000);

afterEach(killChildren);

afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe('boot: invalid configuration', () => {
  it(
    'exits non-zero listing every invalid variable',
    async () => {
      const exit = await runServerToExit(
        MAIN,
        serverEnv(tempDataDir(), { ACCESS_TOKEN_TTL: 'banana', PORT: 'eighty' }),
      );
      expect(exit.code).not.toBe(0);
      expect(exit.stderr).toContain('Invalid environment');
      expect(exit.stderr).toMatch(/ACCESS_TOKEN_TTL="banana"/);
      expect(exit.stderr).toMatch(/PORT="eighty"/);
      expect(exit.stdout).not.toContain('Parlor listening');
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'refuses NODE_ENV=production without JWT_SECRET, naming it',
    async () => {
      const dataDir = tempDataDir();
      const exit = await runServerToExit(MAIN, serverEnv(dataDir, { NODE_ENV: 'production' }));
      expect(exit.code).not.toBe(0);
      expect(exit.stderr).toMatch(/JWT_SECRET: required when NODE_ENV=production/);
      // Production never falls back to a generated secret.
      expect(existsSync(join(dataDir, 'jwt-secret'))).toBe(false);
    },
    TEST_TIMEOUT_MS,
  );
});

/** Terminal colour and cursor codes: never in output that goes to a pipe or a file. */
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[/;

describe('boot: a quiet start', () => {
  it(
    'npm start on a fresh data directory: a few lines at info, no warning, the database, migrations, admin, probes unlogged, one line at stop',
    async () => {
      const dataDir = tempDataDir();
      // What `npm start` runs with the defaults of .env.example: development, readable lines.
      const server = await startServer(
        MAIN,
        serverEnv(dataDir, {
          NODE_ENV: 'development',
          LOG_LEVEL: 'info',
          ADMIN_USERNAME: 'admin',
          ADMIN_EMAIL: 'admin@example.com',
          ADMIN_PASSWORD: 'admin-password-1',
        }),
      );
      const boot = server.out.stdout.trim().split('\n');
      for (const probe of ['/health', '/health/ready', '/metrics']) {
        expect((await fetch(server.url + probe)).status).toBe(200);
      }
      const exit = await server.stop();
      expectCleanStop(exit, dataDir);
      const lines = exit.stdout.trim().split('\n');

      expect(boot.length).toBeLessThanOrEqual(20);
      expect(boot.at(-1)).toMatch(/^Parlor listening on http:\/\//);
      expect(exit.stdout + exit.stderr).not.toMatch(/\b(WARN|ERROR|FATAL)\b/);
      expect(exit.stderr).toBe('');
      expect(exit.stdout).not.toMatch(ANSI);
      expect(boot).toContainEqual(
        expect.stringContaining(`embedded PostgreSQL (PGlite) in ${dataDir}`),
      );
      expect(boot).toContainEqual(expect.stringMatching(/applied (\d+) of \1 migrations/));
      expect(boot).toContainEqual(expect.stringContaining('Created admin user "admin"'));
      // Nest's module and route chatter is at debug.
      expect(exit.stdout).not.toMatch(/InstanceLoader|RoutesResolver|RouterExplorer|Mapped \{/);
      // Probes and scrapes are not logged at info.
      expect(lines.slice(boot.length).filter((l) => /\/health|\/metrics/.test(l))).toEqual([]);
      // One line at stop, the last one.
      expect(lines.slice(boot.length)).toEqual([expect.stringContaining('Parlor stopped')]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'a server database is named by host, database and user, never its password',
    async () => {
      // Nothing listens on port 9: the start fails, after saying which database it tried.
      const exit = await runServerToExit(
        MAIN,
        serverEnv(tempDataDir(), {
          LOG_LEVEL: 'info',
          NODE_ENV: 'development',
          DATABASE_URL: 'postgres://parlor:pw-CANARY@127.0.0.1:9/chat',
        }),
      );
      expect(exit.code).not.toBe(0);
      expect(exit.stdout).toContain('PostgreSQL server 127.0.0.1:9/chat as parlor');
      // Each retry of the first connection: one warning line that says why.
      expect(exit.stdout).toMatch(/WARN: TypeOrmModule: Unable to connect .*ECONNREFUSED/);
      expect(exit.stderr.trim().split('\n')).toEqual([
        expect.stringMatching(/^Parlor failed to start: .*ECONNREFUSED/),
      ]);
      expect(exit.stdout + exit.stderr).not.toContain('pw-CANARY');
    },
    TEST_TIMEOUT_MS,
  );
});

describe('boot: ADMIN_* settings', () => {
  it(
    'an admin name signup would refuse stops the boot, saying which setting and why',
    async () => {
      const exit = await runServerToExit(
        MAIN,
        serverEnv(tempDataDir(), {
          ADMIN_USERNAME: 'alİce', // U+0130: lower() in PostgreSQL and JavaScript disagree
          ADMIN_EMAIL: 'admin@example.com',
          ADMIN_PASSWORD: 'admin-password-1',
        }),
      );
      expect(exit.code).not.toBe(0);
      expect(exit.stderr).toMatch(/Invalid ADMIN_\* settings: ADMIN_USERNAME: username must be/);
      expect(exit.stdout + exit.stderr).not.toContain('admin-password-1');
    },
    TEST_TIMEOUT_MS,
  );
});

describe('boot: logs', () => {
  it(
    'JSON lines; a request id on every HTTP line; no password, token or message text at info',
    async () => {
      const secret = { password: 'pw-LOGCANARY-1', content: 'text-LOGCANARY-2' };
      const server = await startServer(
        MAIN,
        serverEnv(tempDataDir(), {
          NODE_ENV: 'production',
          LOG_LEVEL: 'info',
          JWT_SECRET: 'log-test-secret-log-test-secret-0123456789',
        }),
      );
      type Auth = { accessToken: string; refreshToken: string; user: { id: string } };
      const signup = (username: string) =>
        api<Auth>(server.url, 'POST', '/api/v1/auth/signup', {
          username,
          email: `${username}@example.com`,
          password: secret.password,
        });
      const [a, b] = [await signup('alice'), await signup('bob')];
      const login = await api<Auth>(server.url, 'POST', '/api/v1/auth/login', {
        username: 'alice',
        password: secret.password,
      });
      expect(login.status).toBe(200);
      await api(server.url, 'POST', '/api/v1/auth/login', {
        username: 'alice',
        password: 'nope-1234',
      });
      await api(server.url, 'POST', '/api/v1/auth/refresh', { refreshToken: a.body.refreshToken });
      const token = login.body.accessToken;
      const dm = await api<{ id: string }>(
        server.url,
        'POST',
        `/api/v1/direct/${b.body.user.id}`,
        undefined,
        token,
      );
      const sent = await api(
        server.url,
        'POST',
        `/api/v1/rooms/${dm.body.id}/messages?token=${token}`,
        { clientMsgId: 'log-1', content: secret.content },
        token,
      );
      expect(sent.status).toBe(201);
      const { stdout } = await server.stop();

      const lines = stdout
        .trim()
        .split('\n')
        .filter((l) => !l.startsWith('Parlor listening on')) // the one plain line, for humans
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      // Nothing at warn or above; the database named; the stop said in one line.
      expect(lines.filter((l) => (l.level as number) >= 40)).toEqual([]);
      expect(lines.some((l) => String(l.msg).startsWith('embedded PostgreSQL (PGlite) in'))).toBe(
        true,
      );
      // The stop line is the last but for request lines (a keep-alive request's line can be
      // flushed after it on a loaded machine: seen once in CI's server pass).
      expect(lines.filter((l) => !l.req).at(-1)).toMatchObject({
        msg: 'Parlor stopped',
        signal: 'SIGTERM',
      });
      const http = lines.filter((l) => l.req);
      expect(http.length).toBeGreaterThanOrEqual(6);
      for (const l of http) expect((l.req as { id?: string }).id).toEqual(expect.any(String));
      expect(http.every((l) => !(l.req as { path: string }).path.includes('?'))).toBe(true);
      const secrets = [
        secret.password,
        secret.content,
        a.body.accessToken,
        a.body.refreshToken,
        login.body.accessToken,
        login.body.refreshToken,
      ];
      for (const value of secrets) expect(stdout).not.toContain(value);
    },
    TEST_TIMEOUT_MS,
  );
});

describe('boot: embedded database in PARLOR_DATA_DIR', () => {
  it(
    'keeps users and the JWT secret across a restart',
    async () => {
      const dataDir = tempDataDir();
      const alice = { username: 'alice', email: 'alice@example.com', password: 'correct horse' };

      const first = await startServer(MAIN, serverEnv(dataDir));
      expect((await api(first.url, 'GET', '/health')).status).toBe(200);
      expect((await fetch(first.url + '/docs')).status).toBe(200);
      const signup = await api<TokensBody>(first.url, 'POST', '/api/v1/auth/signup', alice);
      expect(signup.status).toBe(201);
      const firstAccessToken = signup.body.accessToken;
      expectCleanStop(await first.stop(), dataDir);
      expect(existsSync(join(dataDir, 'jwt-secret'))).toBe(true);

      const second = await startServer(MAIN, serverEnv(dataDir));
      const login = await api<TokensBody>(second.url, 'POST', '/api/v1/auth/login', {
        username: alice.username,
        password: alice.password,
      });
      expect(login.status).toBe(200);
      expect(login.body.user).toMatchObject({ username: 'alice', role: 'user' });
      // Signed before the restart, still valid after it: the secret was kept, not regenerated.
      const me = await api<UserBody>(
        second.url,
        'GET',
        '/api/v1/auth/me',
        undefined,
        firstAccessToken,
      );
      expect(me.status).toBe(200);
      expect(me.body).toMatchObject({ username: 'alice', email: alice.email });
      expectCleanStop(await second.stop(), dataDir);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'refuses a second process on the same data directory while the first runs',
    async () => {
      const dataDir = tempDataDir();
      const first = await startServer(MAIN, serverEnv(dataDir));

      // Readable-lines mode, where Nest's own logger used to print a coloured stack.
      const second = await runServerToExit(
        MAIN,
        serverEnv(dataDir, { NODE_ENV: 'development', LOG_LEVEL: 'info' }),
      );
      expect(second.code).not.toBe(0);
      expect(second.stderr).toContain(`Data directory ${dataDir} is already in use`);
      expect(second.stderr).toContain(`pid ${first.proc.pid}`);
      // One line, no stack, no terminal codes: the output is a pipe.
      expect(second.stderr.trim().split('\n')).toEqual([
        expect.stringMatching(/^Parlor failed to start: Data directory /),
      ]);
      expect(second.stdout + second.stderr).not.toMatch(ANSI);
      expect(second.stdout).not.toMatch(/ERROR|\n\s+at /);

      // The first one is unharmed and still owns its database.
      expect((await api(first.url, 'GET', '/health/ready')).status).toBe(200);
      expectCleanStop(await first.stop(), dataDir);
    },
    TEST_TIMEOUT_MS,
  );
});

describe('cli: create-admin', () => {
  it(
    '`npm run cli -- create-admin` makes an admin who can log in; never overwrites',
    async () => {
      const dataDir = tempDataDir();
      const admin = { username: 'boss', email: 'boss@example.com', password: 'admin-password-1' };
      const created = await launch(
        'npm',
        [
          'run',
          'cli',
          '--',
          'create-admin',
          '--username',
          admin.username,
          '--email',
          admin.email,
          '--password',
          admin.password,
        ],
        serverEnv(dataDir),
      ).exited;
      // stderr in the comparison, so that a failure shows why
      expect({ code: created.code, stderr: created.stderr }).toMatchObject({ code: 0 });
      expect(created.stdout).toContain(`Created admin "boss"`);

      // Again with the same name: refused, and the first admin's password still works below.
      const again = await launch(
        process.execPath,
        [CLI, 'create-admin', '--username', 'BOSS', '--email', 'other@example.com'],
        serverEnv(dataDir, { ADMIN_PASSWORD: 'another-password' }),
      ).exited;
      expect(again.code).not.toBe(0);

      const server = await startServer(MAIN, serverEnv(dataDir));
      const login = await api<TokensBody>(server.url, 'POST', '/api/v1/auth/login', {
        username: admin.username,
        password: admin.password,
      });
      expect(login.status).toBe(200);
      expect(login.body.user).toMatchObject({ username: 'boss', role: 'admin' });
      const users = await api<{ items: UserBody[] }>(
        server.url,
        'GET',
        '/api/v1/users',
        undefined,
        login.body.accessToken,
      );
      expect(users.status).toBe(200);
      expect(users.body.items.map((u) => u.username)).toEqual(['boss']);
      expectCleanStop(await server.stop(), dataDir);
    },
    TEST_TIMEOUT_MS,
  );
});
