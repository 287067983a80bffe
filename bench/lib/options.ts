/** Command-line flags: `--name value`, `--name=value`, or `--flag` for booleans. */
export interface Options {
  scenario: string;
  /** Smaller sizes and shorter steps (a few minutes per scenario on 2 cores). */
  quick: boolean;
  /** Tiny sizes, seconds-long: CI keeps the harness working; no timing asserted. */
  smoke: boolean;
  /** `worktree` (default), `dist`, or a git revision to build the server from. */
  server: string;
  dbUrl: string;
  workers: number;
  profile: boolean;
  raw: Record<string, string | true>;
}

export function parseOptions(argv: string[]): Options {
  const raw: Record<string, string | true> = {};
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    if (eq > 0) raw[a.slice(2, eq)] = a.slice(eq + 1);
    else if (argv[i + 1] !== undefined && !argv[i + 1].startsWith('--'))
      raw[a.slice(2)] = argv[++i];
    else raw[a.slice(2)] = true;
  }
  return {
    scenario: positional[0] ?? '',
    quick: raw.quick === true,
    smoke: raw.smoke === true,
    server: typeof raw.server === 'string' ? raw.server : 'worktree',
    dbUrl:
      (typeof raw.db === 'string' && raw.db) ||
      process.env.BENCH_DATABASE_URL ||
      'postgres://postgres@127.0.0.1:5432/postgres',
    workers: num(raw, 'workers', 2),
    profile: raw.profile === true,
    raw,
  };
}

export function num(raw: Record<string, string | true>, name: string, dflt: number): number {
  const v = raw[name];
  if (v === undefined || v === true) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got ${v}`);
  return n;
}

export function list(raw: Record<string, string | true>, name: string, dflt: number[]): number[] {
  const v = raw[name];
  if (v === undefined || v === true) return dflt;
  return v.split(',').map((s) => {
    const n = Number(s.trim().replace(/k$/i, '000'));
    if (!Number.isFinite(n)) throw new Error(`--${name}: not a number: ${s}`);
    return n;
  });
}

export function words(raw: Record<string, string | true>, name: string, dflt: string[]): string[] {
  const v = raw[name];
  return v === undefined || v === true ? dflt : v.split(',').map((s) => s.trim());
}

/** Picks the smoke, quick or full value of a size. */
export function size<T>(o: Options, full: T, quick: T, smoke: T): T {
  return o.smoke ? smoke : o.quick ? quick : full;
}
