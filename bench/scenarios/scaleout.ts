/**
 * scaleout: two Parlor instances behind a private redis-server (each room's members split
 * across both, so every broadcast crosses Redis) vs one instance without Redis, on the same
 * database, same users, alternating A/B at every load level. Delivery and sustained throughput.
 */
import { Fleet } from '../lib/fleet';
import { list, num, type Options, size } from '../lib/options';
import type { ConnSpec } from '../lib/protocol';
import { saveResult } from '../lib/report';
import { onCleanup } from '../lib/run';
import { startRedis } from '../lib/servers';
import { parlor, pgBackends, prepare, seedRooms } from '../lib/setup';
import {
  levelsTable,
  type LoadShape,
  maxLabel,
  stepped,
  sustained,
  type Target,
} from '../lib/stepper';
import { fmt, log, ratio, table } from '../lib/util';

export async function scaleout(o: Options): Promise<void> {
  const rooms = num(o.raw, 'rooms', size(o, 100, 100, 4));
  const members = num(o.raw, 'members', size(o, 10, 10, 4));
  const [payloadBytes] = list(o.raw, 'payloads', [100]);
  const durationMs = num(o.raw, 'duration', size(o, 10, 4, 1)) * 1000;
  const warmupMs = num(o.raw, 'warmup', size(o, 1, 1, 0)) * 1000;
  const factor = num(o.raw, 'factor', 1.5);
  const maxSteps = num(o.raw, 'max-steps', size(o, 12, 10, 2));
  const start = num(o.raw, 'start-small', size(o, 100, 100, 20));

  const prep = await prepare(o);
  const single = await parlor(prep, 'single');
  const redis = await startRedis();
  onCleanup('stop redis', () => redis.stop());
  log(`  private redis-server (pid ${redis.pid}) at ${redis.url}`);
  const a = await parlor(prep, 'instance-a', { redisUrl: redis.url });
  const b = await parlor(prep, 'instance-b', { redisUrl: redis.url });
  const seed = await seedRooms(single.url, rooms, members, 0);

  const fleet = await Fleet.start(o.workers);
  onCleanup('stop workers', () => fleet.exit());
  const sendTo = (i: number): Record<string, string> => {
    const room = seed.smallRoomOf[i];
    return room ? { small: room } : {};
  };
  const singleConns: ConnSpec[] = seed.users.map((u, i) => ({
    url: single.url,
    token: u.token,
    sendTo: sendTo(i),
  }));
  // Neighbours in a room alternate between the instances: every room spans both.
  const dualConns: ConnSpec[] = seed.users.map((u, i) => ({
    url: i % 2 ? b.url : a.url,
    token: u.token,
    sendTo: sendTo(i),
  }));
  for (const [group, conns] of [
    ['single', singleConns],
    ['dual', dualConns],
  ] as const) {
    const r = await fleet.open(group, 'parlor', conns);
    if (r.failed)
      throw new Error(`${r.failed} ${group} connections failed: ${r.errors.join('; ')}`);
  }

  const targets: Target[] = [
    {
      name: '1 instance',
      group: 'single',
      db: prep.db,
      processes: async () => ({ server: [single.pid], postgres: await pgBackends(prep.db) }),
    },
    {
      name: '2 instances',
      group: 'dual',
      db: prep.db,
      processes: async () => ({
        server: [a.pid, b.pid],
        postgres: await pgBackends(prep.db),
        redis: [redis.pid],
      }),
    },
  ];
  const load: LoadShape = {
    shape: 'small',
    payloadBytes,
    fanout: members,
    durationMs,
    warmupMs,
    drainMs: o.smoke ? 2000 : 5000,
    settleMs: o.smoke ? 200 : 1500,
  };
  log(`\n== scaleout: ${rooms} rooms × ${members}, ${payloadBytes} B ==`);
  const levels = await stepped(fleet, targets, load, start, factor, maxSteps);
  console.log(
    `\nscaleout ${rooms} rooms × ${members}, ${payloadBytes} B payload, ${durationMs / 1000} s steps (server CPU = both instances)`,
  );
  console.log(levelsTable(levels));

  const one = sustained(levels, '1 instance');
  const two = sustained(levels, '2 instances');
  const x = ratio(two.max, one.max);
  // Delivery of the 2-instance setup at every load the single instance sustained.
  const dualAtSustained = levels.filter(
    (l) => l.target === '2 instances' && l.offered <= (one.max || Infinity) * 1.01,
  );
  const minDelivery = dualAtSustained.length
    ? Math.min(...dualAtSustained.map((l) => l.delivery))
    : null;
  console.log(
    `\nscaleout summary (server ${prep.build.source}; targets: 2 instances deliver 100 %, throughput ≥ 0.9× one instance)`,
  );
  console.log(
    table(
      [
        '1 instance max/s',
        '2 instances max/s',
        'ratio',
        '2-instance delivery (min, loads ≤ 1-instance max)',
      ],
      [
        [
          maxLabel(one),
          maxLabel(two),
          `${fmt(x, 2)} ${x !== null && x >= 0.9 ? 'met' : 'MISSED'}`,
          minDelivery === null
            ? '—'
            : `${fmt(minDelivery * 100, 3)} % ${minDelivery >= 1 ? 'met' : 'MISSED'}`,
        ],
      ],
    ),
  );
  saveResult('scaleout', {
    server: prep.build.source,
    options: {
      rooms,
      members,
      payloadBytes,
      durationMs,
      factor,
      maxSteps,
      start,
      workers: o.workers,
    },
    singleMax: one,
    dualMax: two,
    ratio: x,
    minDualDelivery: minDelivery,
    levels,
  });
}
