import type { ConfigService } from '@nestjs/config';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Env } from '../src/config/env';
import { type ChannelListener, RedisChannels } from '../src/redis/redis-channels';
import { createRedis } from '../src/redis/redis-client';
import { PrivateRedis, sleep, until, hasRedisServer } from './faults/infra';

/**
 * RedisChannels on a real Redis (a private redis-server of this test, so connections can be
 * counted and the server started late): every feature's channel over one subscriber
 * connection, channels listened to while Redis was away subscribed once it is there, a lost
 * connection reported to every listener and its channels subscribed again, a channel left once
 * its last listener goes. How many connections a whole instance opens is counted on two real
 * processes in test/persona-streams-scaleout.e2e-spec.ts.
 */

(hasRedisServer ? describe : describe.skip)('RedisChannels (real Redis)', () => {
  let redis: PrivateRedis;
  let main: Redis;
  let admin: Redis;
  let channels: RedisChannels;

  /** The RedisChannels of one instance, its clients on `redis`. */
  const boot = () => {
    main = createRedis(redis.url, 'main');
    admin = createRedis(redis.url, 'test-admin');
    const config = { get: () => redis.url } as unknown as ConfigService<Env, true>;
    channels = new RedisChannels(main, config);
  };

  beforeEach(async () => {
    redis = await PrivateRedis.create();
  });

  afterEach(async () => {
    channels?.onApplicationShutdown();
    main?.disconnect();
    admin?.disconnect();
    await redis.kill();
  });

  const subscriber = () => (channels as unknown as { subscriber: Redis | null }).subscriber;
  /** The CLIENT LIST line of the subscriber connection. */
  /** The subscriber's address as Redis sees it (CLIENT LIST's `addr`). */
  const subscriberAddr = () => {
    const { stream } = subscriber() as unknown as {
      stream: { localAddress: string; localPort: number };
    };
    return `${stream.localAddress}:${stream.localPort}`;
  };
  const subscriberLine = async () => {
    const lines = ((await admin.client('LIST')) as string).split('\n');
    return lines.find((l) => l.includes(` addr=${subscriberAddr()} `));
  };
  /** A listener; what it heard. */
  const listener = () => {
    const heard: string[] = [];
    let reconnects = 0;
    const l: ChannelListener = {
      message: (raw) => heard.push(raw),
      reconnected: () => reconnects++,
    };
    return { heard, reconnects: () => reconnects, l };
  };
  /** Publishes until `heard` has `raw` (a first publish may precede the SUBSCRIBE). */
  const deliver = async (channel: string, raw: string, heard: string[]) => {
    await until(
      () => {
        if (!heard.includes(raw)) channels.publish(channel, raw);
        return heard.includes(raw);
      },
      10_000,
      `${raw} on ${channel}`,
    );
  };

  it('serves every channel and listener over one subscriber connection', async () => {
    await redis.start();
    boot();
    const [a, b] = [`test:${randomUUID()}`, `test:${randomUUID()}`];
    const a1 = listener();
    const a2 = listener();
    const b1 = listener();
    channels.listen(a, a1.l);
    const sub = subscriber();
    channels.listen(a, a2.l);
    channels.listen(b, b1.l);
    expect(subscriber()).toBe(sub); // one connection, opened by the first listener

    await deliver(a, 'to-a', a1.heard);
    await deliver(b, 'to-b', b1.heard);
    await until(() => a2.heard.includes('to-a'), 2000, 'the second listener of a');
    expect(a1.heard.every((m) => m === 'to-a')).toBe(true);
    expect(b1.heard.every((m) => m === 'to-b')).toBe(true);
    const line = await subscriberLine();
    expect(line).toMatch(/ name=parlor:channels /);
    expect(line).toMatch(/ sub=2 /);
    const names = ((await admin.client('LIST')) as string).match(/ name=parlor:\S+/g);
    expect(names?.sort()).toEqual([
      ' name=parlor:channels',
      ' name=parlor:main',
      ' name=parlor:test-admin',
    ]);
  });

  it('subscribes the channels listened to while Redis was away once it is there', async () => {
    boot(); // Redis is not running yet
    const a = `test:${randomUUID()}`;
    const a1 = listener();
    channels.listen(a, a1.l);
    await sleep(1000); // the connection attempts failed meanwhile (and a queued SUBSCRIBE with them)
    await redis.start();
    await deliver(a, 'late', a1.heard);
    expect(a1.reconnects()).toBe(1); // what was read meanwhile may have missed changes
  });

  it('tells every listener when the connection was lost, and hears its channels again', async () => {
    await redis.start();
    boot();
    const [a, b] = [`test:${randomUUID()}`, `test:${randomUUID()}`];
    const a1 = listener();
    const b1 = listener();
    channels.listen(a, a1.l);
    channels.listen(b, b1.l);
    await deliver(a, 'before', a1.heard);
    await until(() => a1.reconnects() === 1, 5000, 'the first subscription');
    // Dropped by the server, as a Redis restart or a network cut would.
    const addr = subscriberAddr();
    expect(await admin.client('KILL', 'ADDR', addr, 'SKIPME', 'no')).toBe(1);

    await until(() => a1.reconnects() === 2 && b1.reconnects() === 2, 10_000, 'the reconnect');
    await deliver(a, 'after', a1.heard);
    await deliver(b, 'after', b1.heard);
  });

  it('leaves a channel when its last listener goes; a throwing listener does not stop the others', async () => {
    await redis.start();
    boot();
    const a = `test:${randomUUID()}`;
    const a1 = listener();
    const a2 = listener();
    const thrower: ChannelListener = {
      message: () => {
        throw new Error('bad listener');
      },
    };
    const stopThrower = channels.listen(a, thrower);
    const stop1 = channels.listen(a, a1.l);
    const stop2 = channels.listen(a, a2.l);
    await deliver(a, 'both', a1.heard);
    await until(() => a2.heard.includes('both'), 2000, 'the second listener');

    stop1();
    await deliver(a, 'second only', a2.heard);
    expect(a1.heard).not.toContain('second only');
    stop2();
    expect(Number((await main.pubsub('NUMSUB', a))[1])).toBe(1); // the thrower still listens
    stopThrower();
    await until(
      async () => Number((await main.pubsub('NUMSUB', a))[1]) === 0,
      5000,
      'the UNSUBSCRIBE',
    );
  });
});
