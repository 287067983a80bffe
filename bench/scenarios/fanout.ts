/**
 * fanout: persisted messages per second and fan-out latency, Parlor vs the bare reference, for
 * each room shape (many small rooms, one big room) and payload size. Offered load is stepped up
 * until p99 > 500 ms or delivery < 99.9 %; then both run at 50 % of the reference's maximum.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Fleet } from '../lib/fleet';
import { list, num, type Options, size, words } from '../lib/options';
import { printProfile, summariseProfile } from '../lib/profile';
import type { ConnSpec } from '../lib/protocol';
import { RESULTS, saveResult } from '../lib/report';
import { onCleanup } from '../lib/run';
import { parlor, pgBackends, prepare, seedRooms } from '../lib/setup';
import { startReference } from '../lib/servers';
import {
  type Level,
  levelsTable,
  type LoadShape,
  measure,
  stepped,
  sustained,
  type Target,
} from '../lib/stepper';
import { fmt, log, ratio, table } from '../lib/util';

export async function fanout(o: Options): Promise<void> {
  const rooms = num(o.raw, 'rooms', size(o, 100, 100, 4));
  const members = num(o.raw, 'members', size(o, 10, 10, 5));
  const big = num(o.raw, 'big', size(o, 1000, 1000, 20));
  const shapes = words(o.raw, 'shapes', ['small', 'big']);
  const payloads = list(o.raw, 'payloads', size(o, [100, 1024], [100, 1024], [100]));
  const durationMs = num(o.raw, 'duration', size(o, 10, 4, 1)) * 1000;
  const factor = num(o.raw, 'factor', 1.5);
  const maxSteps = num(o.raw, 'max-steps', size(o, 12, 10, 2));
  const startSmall = num(o.raw, 'start-small', size(o, 100, 100, 20));
  const startBig = num(o.raw, 'start-big', size(o, 4, 4, 5));
  const shapeLabel: Record<string, string> = {
    small: `${rooms} rooms × ${members}`,
    big: `1 room × ${big}`,
  };

  const prep = await prepare(o);
  const server = await parlor(prep, 'parlor');
  const ref = await startReference();
  onCleanup('stop reference', () => ref.stop());
  log(`  reference (pid ${ref.pid}) at ${ref.url}`);
  const seed = await seedRooms(server.url, rooms, members, shapes.includes('big') ? big : 0);

  const fleet = await Fleet.start(o.workers);
  onCleanup('stop workers', () => fleet.exit());
  const sendTo = (i: number) => ({
    ...(seed.smallRoomOf[i] ? { small: seed.smallRoomOf[i] } : {}),
    ...(seed.bigRoom && i < big ? { big: seed.bigRoom } : {}),
  });
  const parlorConns: ConnSpec[] = seed.users.map((u, i) => ({
    url: server.url,
    token: u.token,
    sendTo: sendTo(i),
  }));
  const refConns: ConnSpec[] = seed.users.map((_, i) => ({
    url: ref.url,
    rooms: Object.values(sendTo(i)),
    sendTo: sendTo(i),
  }));
  for (const [group, kind, conns] of [
    ['parlor', 'parlor', parlorConns],
    ['reference', 'ref', refConns],
  ] as const) {
    const r = await fleet.open(group, kind, conns);
    if (r.failed)
      throw new Error(`${r.failed} ${group} connections failed: ${r.errors.join('; ')}`);
  }

  const parlorTarget: Target = {
    name: 'parlor',
    group: 'parlor',
    db: prep.db,
    processes: async () => ({ server: [server.pid], postgres: await pgBackends(prep.db) }),
    profile: { start: () => server.profileStart(), stop: (f) => server.profileStop(f) },
  };
  const refTarget: Target = {
    name: 'reference',
    group: 'reference',
    processes: () => Promise.resolve({ server: [ref.pid] }),
    profile: { start: () => ref.profileStart(), stop: (f) => ref.profileStop(f) },
  };

  const combos: {
    shape: string;
    label: string;
    payloadBytes: number;
    levels: Level[];
    half: Level[];
    profiles: Record<string, unknown>;
  }[] = [];
  for (const shape of shapes) {
    for (const payloadBytes of payloads) {
      const load: LoadShape = {
        shape,
        payloadBytes,
        fanout: shape === 'big' ? big : members,
        durationMs,
        drainMs: o.smoke ? 2000 : 5000,
        settleMs: o.smoke ? 200 : 1500,
      };
      log(`\n== fanout: ${shapeLabel[shape]}, ${payloadBytes} B ==`);
      const start = shape === 'big' ? startBig : startSmall;
      const levels = await stepped(fleet, [refTarget, parlorTarget], load, start, factor, maxSteps);
      // Both at 50 % of the reference's maximum (A/B), for the latency target.
      const refMax = sustained(levels, 'reference').max;
      const half: Level[] = [];
      const profiles: Record<string, unknown> = {};
      if (refMax > 0 && !o.smoke) {
        log(`  at 50 % of the reference's maximum (${fmt(refMax / 2, 0)}/s):`);
        for (const t of [refTarget, parlorTarget]) {
          let file: string | undefined;
          if (o.profile) {
            mkdirSync(join(RESULTS, 'profiles'), { recursive: true });
            file = join(
              RESULTS,
              'profiles',
              `fanout-${shape}-${payloadBytes}-${t.name}-${Date.now()}.cpuprofile`,
            );
          }
          const l = await measure(fleet, t, load, refMax / 2, fleet.pids, file);
          half.push(l);
          log(
            `    ${l.target}: p99 ${fmt(l.latency?.p99, 1)} ms, delivery ${fmt(l.delivery * 100, 2)} %`,
          );
          if (file) {
            const summary = summariseProfile(file);
            profiles[t.name] = { file, ...summary };
            console.log(
              `\n${printProfile(`CPU profile, ${t.name}, ${shapeLabel[shape]}, ${payloadBytes} B at ${fmt(refMax / 2, 0)}/s`, summary)}`,
            );
          }
        }
      }
      console.log(
        `\nfanout ${shapeLabel[shape]}, ${payloadBytes} B payload, ${durationMs / 1000} s steps`,
      );
      console.log(levelsTable([...levels, ...half]));
      combos.push({ shape, label: shapeLabel[shape], payloadBytes, levels, half, profiles });
    }
  }

  // Summary with the targets of issue 7.
  const rows = combos.map((c) => {
    const r = sustained(c.levels, 'reference');
    const p = sustained(c.levels, 'parlor');
    const refHalf = c.half.find((l) => l.target === 'reference');
    const parHalf = c.half.find((l) => l.target === 'parlor');
    const tput = ratio(p.max, r.max);
    const lat = ratio(parHalf?.latency?.p99, refHalf?.latency?.p99);
    return {
      shape: c.label,
      payloadBytes: c.payloadBytes,
      referenceMax: r.max,
      referenceBounded: r.bounded,
      parlorMax: p.max,
      parlorBounded: p.bounded,
      throughputRatio: tput,
      halfLoad: refHalf?.offered ?? null,
      referenceP99AtHalf: refHalf?.latency?.p99 ?? null,
      parlorP99AtHalf: parHalf?.latency?.p99 ?? null,
      parlorDeliveryAtHalf: parHalf?.delivery ?? null,
      latencyRatio: lat,
    };
  });
  console.log(
    `\nfanout summary (server ${prep.build.source}; targets: throughput ≥ 0.5×, p99 at 50 % load ≤ 2×)`,
  );
  console.log(
    table(
      [
        'shape',
        'payload',
        'ref max/s',
        'parlor max persisted/s',
        'ratio',
        'load',
        'ref p99',
        'parlor p99',
        'p99 ratio',
      ],
      rows.map((r) => [
        r.shape,
        `${r.payloadBytes} B`,
        `${r.referenceBounded ? '' : '≥'}${fmt(r.referenceMax, 0)}`,
        `${r.parlorBounded ? '' : '≥'}${fmt(r.parlorMax, 0)}`,
        `${fmt(r.throughputRatio, 2)} ${r.throughputRatio === null ? '' : r.throughputRatio >= 0.5 ? 'met' : 'MISSED'}`,
        fmt(r.halfLoad, 0),
        fmt(r.referenceP99AtHalf, 1),
        fmt(r.parlorP99AtHalf, 1),
        `${fmt(r.latencyRatio, 2)} ${r.latencyRatio === null ? '' : r.latencyRatio <= 2 ? 'met' : 'MISSED'}`,
      ]),
    ),
  );
  saveResult('fanout', {
    server: prep.build.source,
    options: {
      rooms,
      members,
      big,
      shapes,
      payloads,
      durationMs,
      factor,
      maxSteps,
      workers: o.workers,
      quick: o.quick,
      smoke: o.smoke,
    },
    summary: rows,
    combos,
  });
}
