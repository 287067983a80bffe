import { jest } from '@jest/globals';
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startApp, type TestApp } from './support/app';
import { ADMIN_ENV, loginAdmin, newRoom, newUser } from './support/factories';

/**
 * The client package as an outside project gets it (issue 13): `npm run client:build`, packed
 * with `npm pack`, installed from the tarball into a throwaway project with a standard strict
 * tsconfig, type-checked there (nodenext and bundler resolution) and run against a live
 * Parlor: login → join → send → receive. Works offline: the tarball's one dependency,
 * socket.io-client, is seeded from this repository's node_modules, so npm finds it installed.
 */
const ROOT = process.cwd();
const run = promisify(execFile);
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

jest.setTimeout(180_000);

/** Copies a package and its dependencies (as installed here) into `dir`/node_modules. */
function seed(dir: string, name: string, seen = new Set<string>()): void {
  if (seen.has(name)) return;
  seen.add(name);
  const from = realpathSync(join(ROOT, 'node_modules', name));
  cpSync(from, join(dir, 'node_modules', name), { recursive: true });
  const pkg = JSON.parse(readFileSync(join(from, 'package.json'), 'utf8')) as {
    dependencies?: Record<string, string>;
  };
  for (const dep of Object.keys(pkg.dependencies ?? {})) seed(dir, dep, seen);
}

const STRICT = {
  strict: true,
  target: 'es2022',
  lib: ['es2022', 'dom'],
  types: [],
  skipLibCheck: false, // the package's own .d.ts files are checked
  skipDefaultLibCheck: true,
  noEmitOnError: true,
  forceConsistentCasingInFileNames: true,
};

/** What an outside project writes: only the package's public API, nothing from this repo. */
const CONSUMER = `
import {
  ErrorCode,
  ParlorClient,
  ParlorError,
  type ErrorCodeName,
  type MessageDto,
  type RoomJoinResult,
} from '@parlor/client';
import { CONFIG } from './config.js';

async function login(username: string, password: string): Promise<string> {
  const res = await fetch(CONFIG.url + '/api/v1/auth/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  if (!res.ok) throw new Error('login failed: ' + res.status);
  return ((await res.json()) as { accessToken: string }).accessToken;
}

const connect = async (token: string): Promise<ParlorClient> =>
  ParlorClient.connect({ url: CONFIG.url, token, socket: { transports: ['websocket'] } });

const alice = await connect(await login(CONFIG.alice.username, CONFIG.alice.password));
const bob = await connect(await login(CONFIG.bob.username, CONFIG.bob.password));
try {
  const joined: RoomJoinResult = await bob.join(CONFIG.roomId);
  await alice.join(CONFIG.roomId);

  const received = new Promise<MessageDto>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('bob received nothing')), 5000);
    const off = bob.on('message.created', (m) => {
      if (m.role !== 'user') return; // the "joined" notes
      clearTimeout(timer);
      off();
      resolve(m);
    });
  });
  const sent: MessageDto = await alice.send(CONFIG.roomId, 'hello from an outside project');
  const got = await received;
  const id: number = got.id;

  // The contract is typed, not \`any\`: a wrong payload does not compile.
  // @ts-expect-error clientMsgId and content are missing
  void alice.request('message.send', { roomId: CONFIG.roomId }).catch(() => undefined);

  let errorCode: ErrorCodeName | 'DISCONNECTED' | 'TIMEOUT' | 'CLOSED' | 'ABORTED' | null = null;
  try {
    await alice.join('00000000-0000-4000-8000-000000000000');
  } catch (e) {
    if (e instanceof ParlorError) errorCode = e.code;
  }
  console.log(
    JSON.stringify({
      joinedRoom: joined.room.id,
      sent: { id: sent.id, content: sent.content },
      received: { id, content: got.content, author: got.author?.username ?? null },
      errorCode,
      notFound: errorCode === ErrorCode.NOT_FOUND,
    }),
  );
} finally {
  alice.close();
  bob.close();
}
`;

describe('the client package (@parlor/client) in an outside strict-TS project', () => {
  let t: TestApp;
  let dir: string;
  afterAll(async () => {
    await t?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('packs, installs from the tarball offline, type-checks and talks to a live server', async () => {
    dir = mkdtempSync(join(tmpdir(), 'parlor-client-consumer-'));

    // Build and pack exactly what `npm run client:pack` ships.
    await run('npm', ['run', '--silent', 'client:build'], { cwd: ROOT });
    const packed = await run(
      'npm',
      ['pack', './client', '--pack-destination', dir, '--json', '--silent'],
      { cwd: ROOT },
    );
    const [info] = JSON.parse(packed.stdout) as {
      filename: string;
      files: { path: string }[];
    }[];
    // Only the client and the two decorator-free contract files: no server code.
    expect(info.files.map((f) => f.path).sort()).toEqual([
      'dist/client/index.d.ts',
      'dist/client/index.js',
      'dist/src/chat/contract.d.ts',
      'dist/src/chat/contract.js',
      'dist/src/common/wire.d.ts',
      'dist/src/common/wire.js',
      'package.json',
    ]);

    writeFileSync(
      join(dir, 'package.json'),
      JSON.stringify({ name: 'outside-project', private: true, type: 'module' }),
    );
    seed(dir, 'socket.io-client');
    await run(
      'npm',
      ['install', '--offline', '--no-audit', '--no-fund', join(dir, info.filename)],
      { cwd: dir },
    );
    const lock = JSON.parse(readFileSync(join(dir, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dependencies?: Record<string, string> }>;
    };
    expect(lock.packages['node_modules/@parlor/client'].dependencies).toHaveProperty([
      'socket.io-client',
    ]);
    const installed = join(dir, 'node_modules', '@parlor', 'client');
    // Every import in the package is one of its own files or socket.io-client.
    const imports = info.files
      .filter((f) => f.path.startsWith('dist/'))
      .flatMap((f) => [
        ...readFileSync(join(installed, f.path), 'utf8').matchAll(
          /\b(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g,
        ),
      ])
      .map((m) => m[1]);
    expect(imports.length).toBeGreaterThan(0);
    expect([...new Set(imports)].sort()).toEqual([
      '../common/wire.js',
      '../src/chat/contract.js',
      '../src/common/wire.js',
      'socket.io-client',
    ]);

    // A live Parlor, two users in a public room.
    t = await startApp({ ...ADMIN_ENV });
    const admin = await loginAdmin(t);
    const [alice, bob] = [await newUser(t), await newUser(t)];
    const room = await newRoom(t, admin);
    const config = {
      url: t.url,
      roomId: room.id,
      alice: { username: alice.username, password: alice.password },
      bob: { username: bob.username, password: bob.password },
    };
    writeFileSync(join(dir, 'config.ts'), `export const CONFIG = ${JSON.stringify(config)};\n`);
    writeFileSync(join(dir, 'consumer.ts'), CONSUMER);

    // Type-check as a Node ESM project (nodenext, emits the script) and as a bundled app.
    const tsconfig = (name: string, options: object) =>
      writeFileSync(
        join(dir, name),
        JSON.stringify({ compilerOptions: { ...STRICT, ...options }, files: ['consumer.ts'] }),
      );
    tsconfig('tsconfig.json', { module: 'nodenext', moduleResolution: 'nodenext', outDir: 'out' });
    tsconfig('tsconfig.bundler.json', {
      module: 'esnext',
      moduleResolution: 'bundler',
      noEmit: true,
    });
    const tsc = async (project: string) => {
      try {
        await run(process.execPath, [TSC, '-p', project], { cwd: dir });
        return '';
      } catch (e) {
        return (e as { stdout: string }).stdout;
      }
    };
    expect(await tsc('tsconfig.json')).toBe('');
    expect(await tsc('tsconfig.bundler.json')).toBe('');

    const { stdout } = await run(process.execPath, [join(dir, 'out', 'consumer.js')], {
      cwd: dir,
      timeout: 30_000,
    });
    const result = JSON.parse(stdout.trim().split('\n').pop()!);
    expect(result).toEqual({
      joinedRoom: room.id,
      sent: { id: expect.any(Number), content: 'hello from an outside project' },
      received: {
        id: result.sent.id,
        content: 'hello from an outside project',
        author: alice.username,
      },
      errorCode: 'NOT_FOUND',
      notFound: true, // ErrorCode is a runtime export too
    });

    // The server stored it once.
    const history = await t
      .http()
      .get(`/api/v1/rooms/${room.id}/messages`)
      .set(bob.auth)
      .expect(200);
    expect(
      history.body.items.filter(
        (m: { content?: string }) => m.content === 'hello from an outside project',
      ),
    ).toHaveLength(1);
  });
});
