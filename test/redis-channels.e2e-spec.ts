import type { ConfigService } from '@nestjs/config';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Env } from '../src/config/env';
import { RedisChannels } from '../src/redis/redis-channels';
import { createRedis } from '../src/redis/redis-client';
import { until } from './faults/infra';

/**
 * RedisChannels on a real Redis (TEST_REDIS_URL, CI's second run): every feature's channel over
 * one subscriber connection, a lost connection reported to every listener and its channels
 * subscribed again, a channel left once its last listener goes. How many connections an
 * instance opens is counted on two real processes in test/persona-streams-scaleout.e2e-spec.ts.
 */
const REDIS_URL = process.env.TEST_REDIS_URL;

(REDIS_URL ? describe : describe.skip)('RedisChannels (real Redis)', () => {
  let main: Redis;
  let admin: Redis;
  let channels: RedisChannels;

  beforeEach(async () => {
    main = createRedis(REDIS_URL!, 'main');
    admin = createRedis(REDIS_URL!, 'test-admin');
    const config = { get: () => REDIS_URL } as unknown as ConfigService<Env, true>;
    channels = new RedisChannels(main, config);
    await until(() => main.status === 'ready' && admin.status === 'ready', 5000, 'Redis');
  });

  afterEach(() => {
    channels.onApplicationShutdown();
    main.disconnect();
    admin.disconnect();
  });

  const subscriber = () => (channels as unknown as { subscriber: Redis | null }).subscriber;
  /** Listens on `channel` until the test ends; what it heard. */
  const listener = () => {
    const heard: string[] = [];
    let reconnects = 0;
    return {
      heard,
      reconnects: () => reconnects,
      l: { message: (raw: string) => heard.push(raw), reconnected: () => reconnects++ },
    };
  };
  /** Publishes until `heard` has `raw` (the first may precede the SUBSCRIBE's reply). */
  const deliver = async (channel: string, raw: string, heard: string[]) => {
    await until(
      () => {
        if (!heard.includes(raw)) channels.publish(channel, raw);
        return heard.includes(raw);
      },
      5000,
      `${raw} on ${channel}`,
    );
  };

  it('serves every channel and listener over one subscriber connection', async () => {
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
    const names = (await admin.client('LIST')) as string;
    expect(names).toContain('name=parlor:channels');
  });

  it('tells every listener when the connection was lost, and hears its channels again', async () => {
    const [a, b] = [`test:${randomUUID()}`, `test:${randomUUID()}`];
    const a1 = listener();
    const b1 = listener();
    channels.listen(a, a1.l);
    channels.listen(b, b1.l);
    await deliver(a, 'before', a1.heard);
    const sub = subscriber()!;
    const port = (sub as unknown as { stream: { localPort: number } }).stream.localPort;
    // Dropped by the server, as a Redis restart or a network cut would.
    expect(await admin.client('KILL', 'ADDR', `127.0.0.1:${port}`, 'SKIPME', 'no')).toBe(1);

    await until(() => a1.reconnects() === 1 && b1.reconnects() === 1, 10_000, 'the reconnect');
    await deliver(a, 'after', a1.heard);
    await deliver(b, 'after', b1.heard);
  });

  it('leaves a channel when its last listener goes', async () => {
    const a = `test:${randomUUID()}`;
    const a1 = listener();
    const a2 = listener();
    const stop1 = channels.listen(a, a1.l);
    const stop2 = channels.listen(a, a2.l);
    await deliver(a, 'both', a1.heard);
    await until(() => a2.heard.includes('both'), 2000, 'the second listener');

    stop1();
    await deliver(a, 'second only', a2.heard);
    expect(a1.heard).not.toContain('second only');
    stop2();
    await until(
      async () => Number((await main.pubsub('NUMSUB', a))[1]) === 0,
      5000,
      'the UNSUBSCRIBE',
    );
  });
});
