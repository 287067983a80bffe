import type { ConfigService } from '@nestjs/config';
import type { Redis } from 'ioredis';
import type { Env } from '../config/env';
import type { RedisChannels } from '../redis/redis-channels';
import { PersonaStreams, type StreamRecord } from './persona-streams';

type Value = string | Set<string> | Map<string, string>;

/**
 * An in-memory stand-in for the few ioredis calls PersonaStreams makes (no TTLs: the tests
 * expire keys by hand), which can be taken down (every call rejects, as ioredis does with the
 * connection closed) and brought back, with or without its data.
 */
class FakeRedis {
  readonly data = new Map<string, Value>();
  down = false;

  /** Runs a command, or rejects as ioredis does with the connection closed. */
  private call<T>(fn: () => T): Promise<T> {
    return this.down ? Promise.reject(new Error('Connection is closed.')) : Promise.resolve(fn());
  }

  private run(op: string, args: unknown[]): unknown {
    const [key] = args as string[];
    const d = this.data;
    switch (op) {
      case 'hset': {
        const h = (d.get(key) as Map<string, string>) ?? new Map<string, string>();
        for (const [k, v] of Object.entries(args[1] as Record<string, string>)) h.set(k, v);
        d.set(key, h);
        return 1;
      }
      case 'hgetall':
        return Object.fromEntries((d.get(key) as Map<string, string> | undefined) ?? []);
      case 'get':
        return d.get(key) ?? null;
      case 'set':
        if (args.includes('NX') && d.has(key)) return null;
        d.set(key, String(args[1]));
        return 'OK';
      case 'sadd': {
        const s = (d.get(key) as Set<string>) ?? new Set<string>();
        s.add(String(args[1]));
        d.set(key, s);
        return 1;
      }
      case 'srem':
        return (d.get(key) as Set<string> | undefined)?.delete(String(args[1])) ? 1 : 0;
      case 'smembers':
        return [...((d.get(key) as Set<string> | undefined) ?? [])];
      case 'exists':
        return d.has(key) ? 1 : 0;
      case 'del':
        return (args as string[]).filter((k) => d.delete(k)).length;
      case 'pexpire':
        return d.has(key) ? 1 : 0;
      default:
        throw new Error(`fake redis: ${op} not supported`);
    }
  }

  multi() {
    const ops: [string, unknown[]][] = [];
    const tx: Record<string, unknown> = {};
    for (const op of [
      'hset',
      'hgetall',
      'get',
      'set',
      'sadd',
      'srem',
      'exists',
      'del',
      'pexpire',
    ]) {
      tx[op] = (...args: unknown[]) => {
        ops.push([op, args]);
        return tx;
      };
    }
    tx.exec = () => this.call(() => ops.map(([op, args]) => [null, this.run(op, args)]));
    return tx;
  }

  /** PersonaStreams' one script: APPEND (keys: state, text, alive, taken). */
  eval(_script: string, _n: number, ...a: (string | number)[]): Promise<number> {
    return this.call(() => {
      const [state, text, alive, taken, delta, nextSeq] = a.map(String);
      if (!this.data.has(state)) return this.data.has(taken) ? 2 : 0;
      this.data.set(text, ((this.data.get(text) as string) ?? '') + delta);
      (this.data.get(state) as Map<string, string>).set('nextSeq', nextSeq);
      this.data.set(alive, '1');
      return 1;
    });
  }

  set(...args: unknown[]) {
    return this.call(() => this.run('set', args));
  }
  smembers(key: string) {
    return this.call(() => this.run('smembers', [key]));
  }
  exists(key: string) {
    return this.call(() => this.run('exists', [key]));
  }
  srem(...args: unknown[]) {
    return this.call(() => this.run('srem', args));
  }
  hgetall(key: string) {
    return this.call(() => this.run('hgetall', [key]));
  }
  publish() {
    return this.call(() => 0);
  }
}

const record = (messageId: string): StreamRecord => ({
  messageId,
  roomId: 'room-1',
  roomKind: 'group',
  personaId: 'persona-1',
  personaHandle: 'sage',
  replyToId: 1,
  userId: 'user-1',
  startedAt: Date.now(),
});

function streamsOn(redis: FakeRedis) {
  const channels = { listen: () => () => {} } as unknown as RedisChannels;
  const settings: Record<string, number> = {
    PERSONA_STREAM_STALE_MS: 300,
    PERSONA_MAX_REPLY_MS: 1000,
  };
  const config = { get: (k: string) => settings[k] } as unknown as ConfigService<Env, true>;
  const streams = new PersonaStreams(redis as unknown as Redis, channels, config);
  const lost: string[] = [];
  streams.onLost = (id) => lost.push(id);
  const heartbeat = () => (streams as unknown as { heartbeat(): Promise<void> }).heartbeat();
  return { streams, lost, heartbeat };
}

describe('PersonaStreams: a reply is reported lost only when another instance claimed it', () => {
  it('a reply whose open failed (Redis away) is not reported lost once Redis is back', async () => {
    const redis = new FakeRedis();
    const { streams, lost, heartbeat } = streamsOn(redis);
    redis.down = true;
    expect(await streams.open(record('m1'))).toBe(false); // the reply goes on, unshared
    redis.down = false;
    await heartbeat();
    expect(lost).toEqual([]);
    // It ends normally: saved and announced by this instance.
    expect(await streams.close('m1', 'room-1')).toBe(true);
  });

  it('a record that vanished unclaimed (Redis restarted empty) goes on unshared and ends normally', async () => {
    const redis = new FakeRedis();
    const { streams, lost, heartbeat } = streamsOn(redis);
    expect(await streams.open(record('m2'))).toBe(true);
    expect(await streams.append('m2', 'Hello', 0)).toBe(true);
    redis.data.clear(); // restart without persistence
    await heartbeat();
    expect(lost).toEqual([]);
    expect(await streams.append('m2', ' there', 1)).toBe(true); // not taken: goes on
    await heartbeat();
    expect(lost).toEqual([]);
    expect(await streams.close('m2', 'room-1')).toBe(true);
  });

  it('a reply claimed by another instance (its heartbeat expired) is lost: heartbeat, append and close say so', async () => {
    const redis = new FakeRedis();
    const { streams, lost, heartbeat } = streamsOn(redis);
    const other = streamsOn(redis).streams;
    const stale: string[] = [];
    other.onStale = (s) => {
      stale.push(s.messageId);
      return Promise.resolve();
    };
    expect(await streams.open(record('m3'))).toBe(true);
    expect(await streams.append('m3', 'Hello', 0)).toBe(true);
    redis.data.delete('parlor:pstream:m3:alive'); // this instance stalled: its heartbeat expired
    await other.sweep();
    expect(stale).toEqual(['m3']);
    expect(await streams.append('m3', ' there', 1)).toBe(false);
    await heartbeat();
    expect(lost).toEqual(['m3']);
    expect(await streams.close('m3', 'room-1')).toBe(false); // not saved a second time
  });
});
