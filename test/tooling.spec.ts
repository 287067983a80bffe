import { execFileSync, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The developer scripts (docs/development.md): the CLI's build-if-stale, and the lockfile. */
const ROOT = process.cwd();
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

describe('npm run cli: builds only when the sources are newer than dist/', () => {
  // A scratch project with the real scripts/build.mjs and a stub dist/src/cli.js; the `cli`
  // script line of package.json is run there as npm would run it.
  let root: string;
  const past = new Date(Date.now() - 60_000);
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'parlor-cli-'));
    cpSync(join(ROOT, 'scripts'), join(root, 'scripts'), { recursive: true });
    mkdirSync(join(root, 'src'));
    writeFileSync(join(root, 'src', 'main.ts'), 'export {};\n');
    utimesSync(join(root, 'src', 'main.ts'), past, past);
    utimesSync(join(root, 'src'), past, past);
    mkdirSync(join(root, 'dist', 'src'), { recursive: true });
    writeFileSync(join(root, 'dist', 'src', 'cli.js'), 'console.log("usage: cli");\n');
    writeFileSync(join(root, 'dist', '.build-stamp'), 'x\n'); // newer than src/, older than now
    const built = new Date(past.getTime() + 1000);
    utimesSync(join(root, 'dist', '.build-stamp'), built, built);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const runCli = (...args: string[]) =>
    spawnSync('sh', ['-c', `${pkg.scripts.cli} "$@"`, 'cli', ...args], {
      cwd: root,
      encoding: 'utf8',
    });

  it('with a current dist/ runs the CLI at once and touches nothing in dist/', () => {
    const stamp = statSync(join(root, 'dist', '.build-stamp')).mtimeMs;
    const cli = statSync(join(root, 'dist', 'src', 'cli.js')).mtimeMs;
    const res = runCli('--help');
    // No compile: nothing said on stderr, and dist/ untouched (a wall-clock bound here only
    // measured how busy the host was).
    expect({ status: res.status, stdout: res.stdout, stderr: res.stderr }).toEqual({
      status: 0,
      stdout: 'usage: cli\n',
      stderr: '',
    });
    expect(statSync(join(root, 'dist', '.build-stamp')).mtimeMs).toBe(stamp);
    expect(statSync(join(root, 'dist', 'src', 'cli.js')).mtimeMs).toBe(cli);
  });

  it('with a source newer than dist/ compiles, in place: dist/ is never removed', () => {
    writeFileSync(join(root, 'src', 'main.ts'), 'export const changed = 1;\n');
    const res = runCli('--help');
    expect(res.stderr).toContain('dist/ is older than the sources: compiling (in place)');
    // The scratch project has no TypeScript, so the compile fails and the CLI does not run; what
    // matters is that dist/ is still there (a server running from it keeps its files) and that
    // it no longer looks current.
    expect(res.status).not.toBe(0);
    expect(existsSync(join(root, 'dist', 'src', 'cli.js'))).toBe(true);
    expect(existsSync(join(root, 'dist', '.build-stamp'))).toBe(false);
  });

  it('a deleted source file also makes dist/ stale (its directory changed)', () => {
    const check = () =>
      execFileSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `import { isFresh } from ${JSON.stringify(join(root, 'scripts', 'build.mjs'))}; console.log(isFresh())`,
        ],
        { encoding: 'utf8' },
      ).trim();
    expect(check()).toBe('true');
    rmSync(join(root, 'src', 'main.ts'));
    expect(check()).toBe('false');
  });
});

describe('package-lock.json', () => {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<
      string,
      {
        dependencies?: Record<string, string>;
        devDependencies?: Record<string, string>;
        optionalDependencies?: Record<string, string>;
      }
    >;
  };

  it('records exactly the dependencies package.json declares (else `npm ci` fails)', () => {
    const rootEntry = lock.packages[''];
    expect(rootEntry.dependencies).toEqual(pkg.dependencies);
    expect(rootEntry.devDependencies).toEqual(pkg.devDependencies);
  });

  it('has an entry for every optional (platform) package, for every OS and CPU', () => {
    // `npm ci` refuses a lockfile that lacks one ("Missing: @swc/core-darwin-arm64 ... from lock
    // file"), even for platforms it would not install: keep lockfiles made where the registry
    // hides some of them out of the repository.
    const missing: string[] = [];
    for (const [path, entry] of Object.entries(lock.packages)) {
      for (const dep of Object.keys(entry.optionalDependencies ?? {})) {
        let base = path;
        for (;;) {
          if (lock.packages[`${base ? `${base}/` : ''}node_modules/${dep}`]) break;
          if (!base) {
            missing.push(`${path || '(root)'} -> ${dep}`);
            break;
          }
          const i = base.lastIndexOf('/node_modules/');
          base = i < 0 ? '' : base.slice(0, i);
        }
      }
    }
    expect(missing).toEqual([]);
  });
});

describe('the Nest CLI', () => {
  it('runs with nest-cli.json: generates into src/ and registers the module (dry run)', () => {
    const colored = execFileSync(
      join(ROOT, 'node_modules', '.bin', 'nest'),
      ['g', 'module', 'widgets', '--dry-run', '--no-spec'],
      { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' } },
    );
    const out = colored.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g'), ''); // its schematics colour regardless
    expect(out).toMatch(/CREATE src\/widgets\/widgets\.module\.ts/);
    expect(out).toMatch(/UPDATE src\/app\.module\.ts/);
    expect(existsSync(join(ROOT, 'src', 'widgets'))).toBe(false);
  }, 60_000);
});
