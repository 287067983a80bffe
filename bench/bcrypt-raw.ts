/**
 * Raw bcrypt on this machine: `node bcrypt-raw.js <cost> <concurrency> <seconds> <maxCount>`
 * runs bcrypt.compare (the work of one login) with that many in flight on libuv's thread pool,
 * as the server does, and prints `{"hashes":…,"ms":…,"perSecond":…}`. Bounded in count and time.
 */
import * as bcrypt from 'bcrypt';

async function main(): Promise<void> {
  const [cost, concurrency, seconds, maxCount] = process.argv.slice(2).map(Number);
  const password = 'bench-password-1';
  const hash = await bcrypt.hash(password, cost);
  await bcrypt.compare(password, hash); // warm-up
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  let started = 0;
  let done = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline && started < maxCount) {
        started++;
        if (!(await bcrypt.compare(password, hash))) throw new Error('bcrypt mismatch');
        done++;
      }
    }),
  );
  const ms = performance.now() - t0;
  process.stdout.write(`${JSON.stringify({ hashes: done, ms, perSecond: (done * 1000) / ms })}\n`);
}

void main();
