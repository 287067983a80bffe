/**
 * Parlor's load harness. `npm run bench -- <scenario> [flags]`; see docs/benchmarks.md.
 *
 *   fanout       persisted msgs/s and fan-out latency vs the bare reference (stepped load)
 *   connections  idle authenticated sockets: RSS per connection after GC vs the reference
 *   history      keyset pages at depth 0 … 990k of a 1M-message room, vs OFFSET
 *   login        logins/s vs raw bcrypt hashes/s at the configured cost
 *   scaleout     2 instances + Redis vs 1 instance: delivery and throughput
 *   attachments  10 MB upload/download through Parlor vs raw disk and raw S3 (s3rver)
 *   parts        ceilings of the parts on their own: the send statement on PostgreSQL by batch
 *                size, Redis PUBLISH/SPUBLISH, one instance per core (docs/scaling.md)
 *   sendcost     PostgreSQL CPU per row of the send statement, unnamed vs prepared, by batch size
 *   profile      hot functions of a saved .cpuprofile (written by --profile)
 *
 * Common flags: --quick (smaller, minutes), --smoke (tiny, seconds; CI), --server
 * worktree|dist|<git rev>, --workers N, --db <postgres url> (or BENCH_DATABASE_URL), --profile.
 */
import { parseOptions } from './lib/options';
import { printProfile, summariseProfile } from './lib/profile';
import { cleanup } from './lib/run';
import { log } from './lib/util';
import { attachments } from './scenarios/attachments';
import { connections } from './scenarios/connections';
import { fanout } from './scenarios/fanout';
import { history } from './scenarios/history';
import { login } from './scenarios/login';
import { parts } from './scenarios/parts';
import { scaleout } from './scenarios/scaleout';
import { sendcost } from './scenarios/sendcost';
import type { Options } from './lib/options';

const SCENARIOS: Record<string, (o: Options) => Promise<void>> = {
  fanout,
  connections,
  history,
  login,
  scaleout,
  attachments,
  parts,
  sendcost,
  // `npm run bench -- profile <file.cpuprofile>`: the hot functions of a saved profile.
  profile: (o) => {
    const file = typeof o.raw.file === 'string' ? o.raw.file : process.argv[3];
    if (!file)
      return Promise.reject(new Error('usage: npm run bench -- profile <file.cpuprofile>'));
    console.log(printProfile(file, summariseProfile(file, 30)));
    return Promise.resolve();
  },
};

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  const run = SCENARIOS[o.scenario];
  if (!run) {
    log(`usage: npm run bench -- <${Object.keys(SCENARIOS).join('|')}> [--quick|--smoke] [flags]`);
    return 2;
  }
  const t0 = Date.now();
  try {
    await run(o);
    log(`\n${o.scenario}: done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    return 0;
  } catch (err) {
    log(
      `\n${o.scenario} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
    );
    return 1;
  } finally {
    await cleanup();
  }
}

void main().then((code) => process.exit(code));
