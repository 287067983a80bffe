import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openUpload, startS3, type LocalS3 } from './support/s3';
import {
  api,
  buildServer,
  killChildren,
  startServer,
  type TokensBody,
} from './support/server-process';
import { sleep } from './support/socket';

/**
 * A crash mid-upload leaves no orphan: the real server (a child process, as `npm start` runs
 * it) is SIGKILLed while a file streams in; the server started again on the same data finds
 * the pending row when its upload time is up and removes it with whatever bytes got stored.
 */
const TEST_TIMEOUT_MS = 180_000;
/**
 * The upload time: long enough that the first server cannot reach it (and remove the row
 * itself) before the kill, even on a loaded CI machine; the test checks that it did not.
 */
const UPLOAD_TIMEOUT_MS = 10_000;
const ADMIN = { username: 'root', email: 'root@example.com', password: 'admin-password-1' };

let MAIN: string;
const temp: string[] = [];
beforeAll(() => {
  MAIN = join(buildServer('attachments-crash'), 'src', 'main.js');
}, 180_000);
afterEach(killChildren);
afterAll(() => {
  for (const dir of temp) rmSync(dir, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temp.push(dir);
  return dir;
}

/** Files below `dir` (recursively), `.part` ones included. */
function filesIn(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.includes('.'));
}

describe.each(['local', 's3'] as const)('a crash mid-upload (%s storage)', (driver) => {
  let s3: LocalS3 | undefined;
  beforeAll(async () => {
    if (driver === 's3') s3 = await startS3('parlor-crash');
  });
  afterAll(() => s3?.close());

  it(
    'leaves a pending row the restarted server removes, with the bytes',
    async () => {
      const dataDir = tempDir('parlor-crash-data-');
      const filesDir = join(dataDir, 'attachments');
      const env: NodeJS.ProcessEnv = {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        NODE_ENV: 'test',
        LOG_LEVEL: 'warn',
        HOST: '127.0.0.1',
        PORT: '0',
        BCRYPT_COST: '4',
        DATABASE_URL: '',
        JWT_SECRET: 'crash-test-secret-crash-test-secret-0123',
        PARLOR_DATA_DIR: dataDir,
        ADMIN_USERNAME: ADMIN.username,
        ADMIN_EMAIL: ADMIN.email,
        ADMIN_PASSWORD: ADMIN.password,
        ATTACHMENT_UPLOAD_TIMEOUT_MS: String(UPLOAD_TIMEOUT_MS),
        ATTACHMENT_SWEEP_MS: '200',
        ...(s3?.env ?? {}),
      };
      const first = await startServer(MAIN, env);
      const login = await api<TokensBody>(first.url, 'POST', '/api/v1/auth/login', {
        username: ADMIN.username,
        password: ADMIN.password,
      });
      const token = login.body.accessToken;
      const room = await api<{ id: string }>(
        first.url,
        'POST',
        '/api/v1/rooms',
        { name: 'crash', visibility: 'public' },
        token,
      );
      expect(room.status).toBe(201);

      // 7 MiB announced, 6 MiB sent: on S3 the first 5 MiB part is already uploaded.
      const uploadStarted = Date.now();
      const req = openUpload(
        `${first.url}/api/v1/rooms/${room.body.id}/attachments`,
        { authorization: `Bearer ${token}` },
        7 * 1024 * 1024,
        'big.bin',
      );
      req.write(Buffer.alloc(6 * 1024 * 1024, 'x'));
      if (driver === 'local') {
        // The bytes are landing in the .part file: the row was written before them.
        for (let i = 0; i < 200 && !filesIn(filesDir).some((f) => f.endsWith('.part')); i++)
          await sleep(25);
        expect(filesIn(filesDir).filter((f) => f.endsWith('.part'))).toHaveLength(1);
      } else {
        // The first 5 MiB part is in: an unfinished multipart upload, not an object.
        for (let i = 0; i < 100 && !(await s3!.uploads()).length; i++) await sleep(50);
        expect(await s3!.uploads()).toHaveLength(1);
        await sleep(500);
      }
      first.proc.kill('SIGKILL');
      await new Promise((resolve) => first.proc.once('close', resolve));
      // Still within the upload time: the row was pending when the first server died.
      expect(Date.now() - uploadStarted).toBeLessThan(UPLOAD_TIMEOUT_MS);
      req.destroy();
      if (driver === 'local') expect(filesIn(filesDir)).toHaveLength(1); // the crash's leftover

      const second = await startServer(MAIN, env);
      try {
        let deleted = 0;
        for (const until = Date.now() + 60_000; Date.now() < until && deleted < 1;) {
          await sleep(100);
          const metrics = await fetch(`${second.url}/metrics`).then((r) => r.text());
          deleted = Number(/^parlor_attachments_deleted_total (\d+)/m.exec(metrics)?.[1] ?? 0);
        }
        expect(deleted).toBe(1); // the pending row, found once its upload time was up
        if (driver === 'local') expect(filesIn(filesDir)).toEqual([]);
        else {
          expect(await s3!.keys()).toEqual([]);
          // Its unfinished multipart upload is aborted once twice the upload time has passed.
          let uploads = await s3!.uploads();
          for (const until = Date.now() + 30_000; Date.now() < until && uploads.length;) {
            await sleep(100);
            uploads = await s3!.uploads();
          }
          expect(uploads).toEqual([]);
        }
        // The stored-bytes gauge counts nothing for it.
        const metrics = await fetch(`${second.url}/metrics`).then((r) => r.text());
        expect(metrics).toMatch(/^parlor_attachments_stored_bytes 0$/m);
      } finally {
        await second.stop();
      }
    },
    TEST_TIMEOUT_MS,
  );
});
