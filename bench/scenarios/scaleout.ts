/**
 * scaleout: N Parlor instances (`--instances`, default 2) behind a private redis-server vs one
 * instance without Redis, on the same database, same users, alternating A/B at every load
 * level. Delivery, sustained throughput, CPU per message (all instances + PostgreSQL, and
 * Redis), and what each instance received from Redis (its `parlor_adapter_messages_received_total`).
 *
 * `--placement spread` (default): each room's members alternate over the instances, so every
 * broadcast crosses Redis to every instance (the worst case). `--placement rooms`: each room's
 * members all on one instance (room k on instance k mod N), as a load balancer with room
 * affinity would place them: with the sharded adapter an instance then receives nothing of the
 * other instances' rooms. `--adapter classic|sharded` sets REDIS_ADAPTER (default: the server's).
 */
import { Fleet } from '../lib/fleet';
import { list, num, type Options, size, words } from '../lib/options';
import type { ConnSpec } from '../lib/protocol';
import { saveResult } from '../lib/report';
import { onCleanup } from '../lib/run';
import { type ServerProc, startRedis } from '../lib/servers';
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
  const instances = num(o.raw, 'instances', 2);
  const [placement] = words(o.raw, 'placement', ['spread']);
  if (placement !== 'spread' && placement !== 'rooms')
    throw new Error(`--placement spread|rooms, not ${placement}`);
  const [adapter] = words(o.raw, 'adapter', []) as (string | undefined)[];
  if (adapter !== undefined && adapter !== 'sharded' && adapter !== 'classic')
    throw new Error(`--adapter sharded|classic, not ${adapter}`);
  const many = `${instances} instances`;

  const prep = await prepare(o);
  const single = await parlor(prep, 'single');
  const redis = await startRedis();
  onCleanup('stop redis', () => redis.stop());
  log(`  private redis-server (pid ${redis.pid}) at ${redis.url}`);
  const fleetOf: ServerProc[] = [];
  for (let k = 0; k < instances; k++) {
    fleetOf.push(
      await parlor(prep, `instance-${k + 1}`, {
        redisUrl: redis.url,
        extraEnv: adapter ? { REDIS_ADAPTER: adapter } : {},
      }),
    );
  }
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
  // spread: neighbours in a room alternate between the instances (every room spans them all);
  // rooms: a room's members share one instance.
  const instanceOf = (i: number) =>
    placement === 'spread' ? i % instances : Math.floor(i / members) % instances;
  const dualConns: ConnSpec[] = seed.users.map((u, i) => ({
    url: fleetOf[instanceOf(i)].url,
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
      name: many,
      group: 'dual',
      db: prep.db,
      processes: async () => ({
        server: fleetOf.map((f) => f.pid),
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
  log(
    `\n== scaleout: ${rooms} rooms × ${members}, ${payloadBytes} B, ${instances} instances, ` +
      `placement ${placement}, adapter ${adapter ?? 'default'} ==`,
  );
  const receivedBefore = await Promise.all(fleetOf.map(adapterReceived));
  const levels = await stepped(fleet, targets, load, start, factor, maxSteps);
  const received = (await Promise.all(fleetOf.map(adapterReceived))).map((r, k) =>
    Object.fromEntries(
      Object.entries(r).map(([channel, n]) => [channel, n - (receivedBefore[k][channel] ?? 0)]),
    ),
  );
  console.log(
    `\nscaleout ${rooms} rooms × ${members}, ${payloadBytes} B payload, ${durationMs / 1000} s steps (server CPU = all instances)`,
  );
  console.log(levelsTable(levels));

  const one = sustained(levels, '1 instance');
  const two = sustained(levels, many);
  const x = ratio(two.max, one.max);
  // Delivery of the N-instance setup at every load the single instance sustained.
  const dualAtSustained = levels.filter(
    (l) => l.target === many && l.offered <= (one.max || Infinity) * 1.01,
  );

  // CPU per message at each rate both sustained: all instances + PostgreSQL, and Redis.
  const cpuRows = levels
    .filter((l) => l.target === '1 instance' && l.pass)
    .flatMap((l1) => {
      const ln = levels.find((l) => l.target === many && l.offered === l1.offered && l.pass);
      if (!ln) return [];
      const redisPerMsg =
        ln.usage.redis?.cpuMs === undefined || !ln.persisted
          ? null
          : (ln.usage.redis.cpuMs * 1000) / ln.persisted;
      return [
        [
          fmt(l1.offered, 0),
          fmt(l1.cpuPerMsg.target, 0),
          fmt(ln.cpuPerMsg.target, 0),
          fmt(ratio(ln.cpuPerMsg.target, l1.cpuPerMsg.target), 2),
          fmt(redisPerMsg, 0),
        ],
      ];
    });
  console.log(
    `\nCPU µs per persisted message (server processes + PostgreSQL backends; Redis apart), at the rates both sustained`,
  );
  console.log(
    table(['rate/s', '1 instance', many, 'ratio', 'Redis µs/msg'], cpuRows.length ? cpuRows : []),
  );
  const totalReceived = received.map((r) => Object.values(r).reduce((a, b) => a + b, 0));
  console.log(
    `\nreceived from Redis during the run, per instance (parlor_adapter_messages_received_total by channel)`,
  );
  console.log(
    table(
      ['instance', 'room', 'server', 'response', 'all'],
      received.map((r, k) => [
        `${k + 1}`,
        fmt(r.room ?? 0, 0),
        fmt(r.server ?? 0, 0),
        fmt(r.response ?? 0, 0),
        fmt(totalReceived[k], 0),
      ]),
    ),
  );
  const minDelivery = dualAtSustained.length
    ? Math.min(...dualAtSustained.map((l) => l.delivery))
    : null;
  console.log(
    `\nscaleout summary (server ${prep.build.source}; targets: ${many} deliver 100 %, throughput ≥ 0.9× one instance)`,
  );
  console.log(
    table(
      [
        '1 instance max/s',
        `${many} max/s`,
        'ratio',
        `${instances}-instance delivery (min, loads ≤ 1-instance max)`,
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
      instances,
      placement,
      adapter: adapter ?? 'default',
      workers: o.workers,
    },
    received,
    singleMax: one,
    dualMax: two,
    ratio: x,
    minDualDelivery: minDelivery,
    levels,
  });
}

/** An instance's `parlor_adapter_messages_received_total`, by channel. */
async function adapterReceived(s: ServerProc): Promise<Record<string, number>> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(
    /^parlor_adapter_messages_received_total\{channel="(\w+)"\} (\d+(?:\.\d+)?)$/gm,
  ))
    out[m[1]] = Number(m[2]);
  return out;
}
