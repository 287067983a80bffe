/**
 * connections: N idle authenticated sockets on one process. Server RSS (and heap) per
 * connection after a full GC, Parlor vs the reference, sizes alternating A/B; also how fast the
 * sockets connected and what the idle sockets cost in CPU.
 */
import { readFileSync } from 'node:fs';
import { RESULTS } from '../lib/report';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Fleet } from '../lib/fleet';
import { byConstructor, type PerConnection, perConnection } from '../lib/heap';
import { list, num, type Options, size } from '../lib/options';
import type { ConnKind, ConnSpec } from '../lib/protocol';
import { saveResult } from '../lib/report';
import { onCleanup } from '../lib/run';
import { startReference, type MemoryUsage, type ServerProc } from '../lib/servers';
import { parlor, prepare, seedRooms } from '../lib/setup';
import { Usage } from '../lib/usage';
import { fmt, log, ratio, sleep, table } from '../lib/util';

/** This process's open-files limit (children inherit it): the most sockets one server can hold. */
function openFilesLimit(): number {
  const m = /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m ? Number(m[1]) : 1024;
}

interface Point {
  target: string;
  requested: number;
  connected: number;
  failed: number;
  connectMs: number;
  perSecond: number;
  base: MemoryUsage;
  loaded: MemoryUsage;
  rssPerConnKb: number;
  heapPerConnKb: number;
  idleCpu: number;
}

const MB = 1024 * 1024;

export async function connections(o: Options): Promise<void> {
  const limit = openFilesLimit();
  // Headroom for the server's own files: database pool, listening socket, logs, V8.
  const cap = limit - 500;
  const requested = list(o.raw, 'sizes', size(o, [5000, 10000, 20000], [2000, 5000, 10000], [50]));
  const sizes = requested.map((n) => Math.min(n, cap));
  if (sizes.some((n, i) => n !== requested[i])) {
    log(
      `note: the open-files limit here is ${limit} (ulimit -n; hard limit, cannot be raised in this ` +
        `sandbox), so a size above ${cap} is measured at ${cap}`,
    );
  }
  const members = 10;
  const users = num(o.raw, 'users', size(o, 1000, 500, 20));
  const idleMs = num(o.raw, 'idle', size(o, 5, 3, 1)) * 1000;
  const workers = Math.max(o.workers, Math.ceil(Math.max(...sizes) / (limit - 1000)));

  const prep = await prepare(o);
  const server = await parlor(prep, 'parlor');
  const ref = await startReference();
  onCleanup('stop reference', () => ref.stop());
  const seed = await seedRooms(server.url, Math.ceil(users / members), members, 0);
  const fleet = await Fleet.start(workers);
  onCleanup('stop workers', () => fleet.exit());

  const conns = (target: 'parlor' | 'reference', n: number): ConnSpec[] =>
    Array.from({ length: n }, (_, i) => {
      const u = i % seed.users.length;
      const room = seed.smallRoomOf[u];
      return target === 'parlor'
        ? { url: server.url, token: seed.users[u].token, sendTo: {} }
        : { url: ref.url, rooms: room ? [room] : [], sendTo: {} };
    });

  const points: Point[] = [];
  const heap: Record<string, PerConnection[]> = {};
  // RSS rarely shrinks after sockets close (the allocator keeps the pages), so RSS per connection
  // is measured from each server's first, fresh baseline; heap (after GC) from just before.
  const fresh = new Map<string, MemoryUsage>();
  const measureAt = async (
    name: 'parlor' | 'reference',
    s: ServerProc,
    kind: ConnKind,
    n: number,
  ) => {
    const base = await s.gc();
    if (!fresh.has(name)) fresh.set(name, base);
    const first = fresh.get(name)!;
    const opened = await fleet.open(name, kind, conns(name, n));
    await sleep(2000);
    const usage = new Usage({ server: [s.pid] });
    await usage.begin();
    await sleep(idleMs);
    const idle = await usage.end();
    const loaded = await s.gc();
    const c = Math.max(1, opened.ok);
    const p: Point = {
      target: name,
      requested: n,
      connected: opened.ok,
      failed: opened.failed,
      connectMs: opened.ms,
      perSecond: (opened.ok * 1000) / opened.ms,
      base: first,
      loaded,
      rssPerConnKb: (loaded.rss - first.rss) / c / 1024,
      heapPerConnKb: (loaded.heapUsed - base.heapUsed) / c / 1024,
      idleCpu: idle.server.cpu,
    };
    points.push(p);
    log(
      `    ${name}: ${opened.ok}/${n} connected in ${fmt(opened.ms / 1000, 1)} s, ` +
        `RSS ${fmt(first.rss / MB, 0)} → ${fmt(loaded.rss / MB, 0)} MB, ${fmt(p.rssPerConnKb, 1)} KB/conn`,
    );
    await fleet.close(name);
    await sleep(3000);
  };

  // --heap N: what one connection keeps alive, by constructor (snapshots before/after N sockets).
  const heapConns = num(o.raw, 'heap', 0);
  if (heapConns > 0) {
    const dir = join(RESULTS, 'heap');
    mkdirSync(dir, { recursive: true });
    for (const [name, s, kind] of [
      ['reference', ref, 'ref'],
      ['parlor', server, 'parlor'],
    ] as const) {
      await s.gc();
      const before = join(dir, `${name}-0.heapsnapshot`);
      const after = join(dir, `${name}-${heapConns}.heapsnapshot`);
      await s.heapSnapshot(before);
      await fleet.open(name, kind, conns(name, heapConns));
      await sleep(2000);
      await s.gc();
      await s.heapSnapshot(after);
      heap[name] = perConnection(byConstructor(before), byConstructor(after), heapConns);
      rmSync(before);
      rmSync(after);
      await fleet.close(name);
      await sleep(2000);
      console.log(
        `\nheap kept alive per connection, ${name} (${heapConns} sockets), top by bytes:`,
      );
      console.log(
        table(
          ['constructor', 'objects/conn', 'bytes/conn'],
          heap[name].map((h) => [h.name.slice(0, 60), fmt(h.perConn, 2), fmt(h.bytesPerConn, 0)]),
        ),
      );
    }
  }

  // Snapshots inflate RSS for good: a --heap run is a diagnostic of its own, without sizes.
  for (const [i, n] of (heapConns > 0 ? [] : sizes).entries()) {
    log(`\n== connections: ${n} ==`);
    const order: ['parlor' | 'reference', ServerProc, ConnKind][] = [
      ['reference', ref, 'ref'],
      ['parlor', server, 'parlor'],
    ];
    if (i % 2) order.reverse();
    for (const [name, s, kind] of order) await measureAt(name, s, kind, n);
  }

  console.log(
    `\nconnections (server ${prep.build.source}; target: 20k on one process, RSS/conn ≤ 1.5× reference)`,
  );
  console.log(
    table(
      [
        'sockets',
        'target',
        'connected',
        'conn/s',
        'RSS before MB',
        'RSS after MB',
        'RSS KB/conn',
        'heap KB/conn',
        'idle CPU %',
        'RSS ratio',
      ],
      points.map((p) => {
        const refP = points.find((q) => q.target === 'reference' && q.requested === p.requested);
        const r = p.target === 'parlor' ? ratio(p.rssPerConnKb, refP?.rssPerConnKb) : null;
        return [
          p.requested,
          p.target,
          p.connected + (p.failed ? ` (${p.failed} failed)` : ''),
          fmt(p.perSecond, 0),
          fmt(p.base.rss / MB, 0),
          fmt(p.loaded.rss / MB, 0),
          fmt(p.rssPerConnKb, 1),
          fmt(p.heapPerConnKb, 1),
          fmt(p.idleCpu, 1),
          r === null ? '' : `${fmt(r, 2)} ${r <= 1.5 ? 'met' : 'MISSED'}`,
        ];
      }),
    ),
  );
  saveResult('connections', {
    server: prep.build.source,
    options: { sizes, requested, openFilesLimit: limit, users, idleMs, workers, heapConns },
    points,
    heap,
  });
}
