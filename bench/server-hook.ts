/**
 * Preloaded into the server under test (`node --expose-gc -r server-hook.js …`), Parlor and the
 * reference alike, so the harness can ask either over the IPC channel, without touching src/:
 * - `gc`: full GC (twice), then process.memoryUsage() — RSS per connection "after GC";
 * - `profile-start` / `profile-stop`: the V8 CPU profiler over a chosen window (a load step),
 *   written as a .cpuprofile (Chrome DevTools / speedscope format). `--cpu-prof` would only
 *   write at a clean exit, and a server stopped by a signal never has one;
 * - `heap-snapshot`: a .heapsnapshot (what each connection keeps alive, by constructor).
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';
import { Session } from 'node:inspector';
import { setFlagsFromString, writeHeapSnapshot } from 'node:v8';

// V8 flags to try on a server without a code change (`--server-env BENCH_V8_FLAGS=…`).
if (process.env.BENCH_V8_FLAGS) setFlagsFromString(process.env.BENCH_V8_FLAGS);

type Command =
  | { id: number; cmd: 'gc' }
  | { id: number; cmd: 'profile-start'; intervalUs?: number }
  | { id: number; cmd: 'profile-stop'; file: string }
  | { id: number; cmd: 'heap-snapshot'; file: string };

let session: Session | undefined;

function post<T>(method: string, params?: object): Promise<T> {
  return new Promise((resolve, reject) => {
    session!.post(method, params ?? {}, (err, result) =>
      err ? reject(err) : resolve(result as T),
    );
  });
}

async function handle(c: Command): Promise<unknown> {
  switch (c.cmd) {
    case 'gc': {
      const gc = (globalThis as { gc?: () => void }).gc;
      if (!gc) throw new Error('start node with --expose-gc');
      gc();
      gc();
      return process.memoryUsage();
    }
    case 'profile-start':
      session ??= new Session();
      session.connect();
      await post('Profiler.enable');
      await post('Profiler.setSamplingInterval', { interval: c.intervalUs ?? 500 });
      await post('Profiler.start');
      return null;
    case 'heap-snapshot':
      return writeHeapSnapshot(c.file);
    case 'profile-stop': {
      if (!session) throw new Error('profiler not started');
      const { profile } = await post<{ profile: unknown }>('Profiler.stop');
      writeFileSync(c.file, JSON.stringify(profile));
      session.disconnect();
      session = undefined;
      return c.file;
    }
  }
}

if (process.send) {
  process.on('message', (c: Command) => {
    handle(c).then(
      (result) => process.send?.({ id: c.id, ok: true, result }),
      (err: unknown) => process.send?.({ id: c.id, ok: false, error: String(err) }),
    );
  });
  // The channel must not keep the server alive once it wants to exit.
  process.channel?.unref();
}

// `--server-env BENCH_STALLS=<file>`: event-loop stalls over 15 ms and GC pauses over 3 ms,
// one line each (`stall|gc <ms since start> <ms>`), to tell a latency tail's cause.
if (process.env.BENCH_STALLS) {
  const file = process.env.BENCH_STALLS;
  const t0 = Date.now();
  let last = performance.now();
  setInterval(() => {
    const now = performance.now();
    if (now - last - 5 > 15)
      appendFileSync(file, `stall ${Date.now() - t0} ${(now - last - 5).toFixed(1)}\n`);
    last = now;
  }, 5).unref();
  new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      if (e.duration > 3)
        appendFileSync(
          file,
          `gc ${Date.now() - t0} ${e.duration.toFixed(1)} kind=${(e as { detail?: { kind?: number } }).detail?.kind}\n`,
        );
  }).observe({ entryTypes: ['gc'] });
}
