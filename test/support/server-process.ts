import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';

/**
 * The built server as operators run it (`node <build>/src/main.js`), in child processes: for
 * boot behaviour, several instances, SIGKILL and SIGTERM drills.
 */
export const ROOT = process.cwd();
// A boot takes ~3 s on an idle machine; 40 s was not enough beside the browser suite on a
// slow 2-core CI host (boot.e2e-spec, 2026-11-28).
const BOOT_TIMEOUT_MS = 90_000;

export const children = new Set<ChildProcess>();

/**
 * Compiles the current sources once per test file into `.test-build/<name>` (inside the
 * project, so node_modules resolve; one folder per file, so parallel Jest workers never write
 * the same files). Returns the folder.
 */
export function buildServer(name: string): string {
  const outDir = join(ROOT, '.test-build', name);
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', outDir], {
      cwd: ROOT,
      encoding: 'utf8',
    });
  } catch (err) {
    const output = (err as { stdout?: string }).stdout ?? '';
    throw new Error(`tsc -p tsconfig.build.json failed:\n${output}`, { cause: err });
  }
  return outDir;
}

export function killChildren(): void {
  for (const child of children) child.kill('SIGKILL');
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Running {
  url: string;
  proc: ChildProcess;
  /** What it printed so far. */
  out: { stdout: string; stderr: string };
  /** SIGTERM, then wait for the process to end. */
  stop: () => Promise<Exit>;
}

/** Spawns a command and collects its output; `exited` resolves when it ends. */
export function launch(command: string, args: string[], env: NodeJS.ProcessEnv) {
  const proc = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  const out = { stdout: '', stderr: '' };
  proc.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const exited = new Promise<Exit>((resolve) =>
    proc.on('close', (code, signal) => {
      children.delete(proc);
      resolve({ code, signal, ...out });
    }),
  );
  return { proc, out, exited };
}

/** Runs the built server to completion (for boots that must fail). */
export function runServerToExit(main: string, env: NodeJS.ProcessEnv): Promise<Exit> {
  const { proc, exited } = launch(process.execPath, [main], env);
  const timer = setTimeout(() => proc.kill('SIGKILL'), BOOT_TIMEOUT_MS);
  return exited.finally(() => clearTimeout(timer));
}

/** Starts the built server and resolves once it prints the address it listens on. */
export async function startServer(main: string, env: NodeJS.ProcessEnv): Promise<Running> {
  const { proc, out, exited } = launch(process.execPath, [main], env);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`server did not start in time:\n${out.stdout}\n${out.stderr}`));
    }, BOOT_TIMEOUT_MS);
    proc.stdout.on('data', () => {
      const m = /Parlor listening on (http:\/\/\S+)/.exec(out.stdout);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    void exited.then((e) => {
      clearTimeout(timer);
      reject(new Error(`server exited (code ${e.code}) before listening:\n${e.stderr}`));
    });
  });
  return {
    url,
    proc,
    out,
    stop: () => {
      proc.kill('SIGTERM');
      return exited;
    },
  };
}

/** What the tests read from the API (see the OpenAPI document at /docs). */
export interface UserBody {
  username: string;
  email: string;
  role: string;
}
export interface TokensBody {
  accessToken: string;
  user: UserBody;
}

export async function api<T = unknown>(
  base: string,
  method: string,
  path: string,
  body?: object,
  token?: string,
): Promise<{ status: number; body: T }> {
  const res = await fetch(base + path, {
    method,
    headers: {
      ...(body ? { 'content-type': 'application/json' } : {}),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}
