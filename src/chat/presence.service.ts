import { Presence } from '../common/presence';
import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import type { Env } from '../config/env';
import { REDIS } from '../redis/redis.module';

const HEARTBEATS = 'parlor:presence:heartbeats';
const instanceKey = (id: string) => `parlor:presence:instance:${id}`;
const sweepLock = (id: string) => `parlor:presence:sweep:${id}`;

/**
 * Reserve one socket slot for a user, atomically over every live instance: the sum of the
 * user's counts in the hashes of instances whose heartbeat is fresh (this one's included) must
 * stay below the cap. Returns -1 when full, else how many sockets the user had before.
 * KEYS: heartbeats, this instance's hash. ARGV: userId, cap, now, ttl, this instance id, prefix.
 * (It reads other instances' hashes by name: fine on one Redis, not on Redis Cluster.)
 */
const RESERVE_SCRIPT = `
local total = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
local beats = redis.call('HGETALL', KEYS[1])
local now, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
for i = 1, #beats, 2 do
  if beats[i] ~= ARGV[5] and now - tonumber(beats[i + 1]) <= ttl then
    total = total + tonumber(redis.call('HGET', ARGV[6] .. beats[i], ARGV[1]) or '0')
  end
end
if total >= tonumber(ARGV[2]) then return -1 end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
return total`;

/** Give one slot back; the field goes when it reaches 0. KEYS: this instance's hash. ARGV: userId. */
const RELEASE_SCRIPT = `
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return n`;

type PresenceRedis = Redis & {
  parlorReserveSocket(...args: (string | number)[]): Promise<number>;
  parlorReleaseSocket(key: string, userId: string): Promise<number>;
};

/**
 * Who is online: a user is online while at least one of their sockets is connected, on any
 * instance (tabs and devices counted).
 *
 * Without Redis this instance's counts are the truth. With Redis, each instance keeps its own
 * hash `userId → sockets` and a heartbeat; a user is online if any live instance has them. The
 * same counts enforce WS_MAX_SOCKETS_PER_USER over all instances: a handshake reserves its slot
 * (`reserve`, one Lua script, atomic) before any other async work, and a dead instance's
 * sockets stop counting as soon as its heartbeat is stale. An
 * instance that dies without saying goodbye stops its heartbeat; within PRESENCE_TTL_MS +
 * PRESENCE_HEARTBEAT_MS another instance removes its hash and announces its users offline
 * (unless they are connected elsewhere). Redis errors degrade to this instance's view.
 */
@Injectable()
export class PresenceService implements Presence, OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(PresenceService.name);
  private readonly redis: PresenceRedis | null;
  /** userId → this instance's sockets of that user (handshakes in progress included). */
  private readonly local = new Map<string, number>();
  readonly instanceId = randomUUID();
  private timer?: NodeJS.Timeout;
  private readonly heartbeatMs: number;
  private readonly ttlMs: number;
  /** Called with users who went offline because their instance died. */
  onOffline: (userId: string) => void = () => undefined;

  constructor(@Inject(REDIS) redis: Redis | null, config: ConfigService<Env, true>) {
    this.heartbeatMs = config.get('PRESENCE_HEARTBEAT_MS', { infer: true });
    this.ttlMs = config.get('PRESENCE_TTL_MS', { infer: true });
    if (redis && !('parlorReserveSocket' in redis)) {
      redis.defineCommand('parlorReserveSocket', { numberOfKeys: 2, lua: RESERVE_SCRIPT });
      redis.defineCommand('parlorReleaseSocket', { numberOfKeys: 1, lua: RELEASE_SCRIPT });
    }
    this.redis = redis as PresenceRedis | null;
  }

  onModuleInit(): void {
    if (!this.redis) return;
    // After an outage, this instance's hash is rewritten from its own sockets.
    this.redis.on('ready', () => void this.beat(true));
    this.timer = setInterval(() => void this.beat(false), this.heartbeatMs).unref();
    void this.beat(true);
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.quietly(async (r) => {
      await r.multi().del(instanceKey(this.instanceId)).hdel(HEARTBEATS, this.instanceId).exec();
    });
  }

  socketCount(userId: string): number {
    return this.local.get(userId) ?? 0;
  }

  /**
   * Takes one of the user's `cap` socket slots, or returns null when they are all taken (here,
   * or with Redis on any live instance). The local count is taken synchronously, before any
   * await, so concurrent handshakes on one instance cannot all pass a check made before any of
   * them counted; with Redis, the script decides over every instance at once. `first`: this is
   * the user's first socket anywhere (they come online). Every reservation must be given back
   * once with `release`.
   */
  async reserve(userId: string, cap: number): Promise<{ first: boolean } | null> {
    const n = this.socketCount(userId);
    if (n >= cap) return null;
    this.local.set(userId, n + 1);
    if (!this.redis) return { first: n === 0 };
    let before: number | null;
    try {
      before = await this.redis.parlorReserveSocket(
        HEARTBEATS,
        instanceKey(this.instanceId),
        userId,
        cap,
        Date.now(),
        this.ttlMs,
        this.instanceId,
        instanceKey(''),
      );
    } catch (err) {
      // Redis away: this instance's own count (checked above) is the limit until it is back.
      this.logger.debug(`socket cap degraded to this instance: ${(err as Error).message}`);
      return { first: n === 0 };
    }
    if (before < 0) {
      this.forget(userId);
      return null;
    }
    return { first: before === 0 };
  }

  /** Gives a slot back. Returns true when this was the user's last socket anywhere. */
  async release(userId: string): Promise<boolean> {
    const left = this.forget(userId);
    if (!this.redis) return left === 0;
    const elsewhere = await this.quietly(async (r) => {
      await (r as PresenceRedis).parlorReleaseSocket(instanceKey(this.instanceId), userId);
      return left > 0 ? null : this.onOtherInstances(r, [userId]);
    });
    return left === 0 && !elsewhere?.has(userId);
  }

  /** Local count minus one; returns what is left. */
  private forget(userId: string): number {
    const n = this.socketCount(userId) - 1;
    if (n > 0) this.local.set(userId, n);
    else this.local.delete(userId);
    return Math.max(0, n);
  }

  async onlineAmong(userIds: string[]): Promise<string[]> {
    const elsewhere =
      this.redis && userIds.length
        ? await this.quietly((r) => this.onOtherInstances(r, userIds))
        : null;
    return userIds.filter((id) => this.local.has(id) || elsewhere?.has(id));
  }

  /** Heartbeat, then clear the presence of instances that stopped beating. */
  private async beat(rewrite: boolean): Promise<void> {
    await this.quietly(async (r) => {
      const mine = instanceKey(this.instanceId);
      const tx = r.multi().hset(HEARTBEATS, this.instanceId, Date.now());
      if (rewrite) {
        tx.del(mine);
        if (this.local.size) tx.hset(mine, Object.fromEntries(this.local));
      }
      await tx.pexpire(mine, this.ttlMs * 4).exec();
      const beats = await r.hgetall(HEARTBEATS);
      const now = Date.now();
      for (const [id, at] of Object.entries(beats)) {
        if (id !== this.instanceId && now - Number(at) > this.ttlMs) await this.sweep(r, id);
      }
    });
  }

  private async sweep(r: Redis, deadId: string): Promise<void> {
    if ((await r.set(sweepLock(deadId), this.instanceId, 'PX', this.ttlMs, 'NX')) !== 'OK') return;
    const users = await r.hkeys(instanceKey(deadId));
    await r.multi().del(instanceKey(deadId)).hdel(HEARTBEATS, deadId).exec();
    const elsewhere = users.length ? await this.onOtherInstances(r, users) : new Set<string>();
    const gone = users.filter((u) => !this.local.has(u) && !elsewhere.has(u));
    this.logger.warn(`Instance ${deadId} stopped beating; ${gone.length} user(s) now offline`);
    for (const u of gone) this.onOffline(u);
  }

  /** Users (of `userIds`) with sockets on other live instances. */
  private async onOtherInstances(r: Redis, userIds: string[]): Promise<Set<string>> {
    const beats = await r.hgetall(HEARTBEATS);
    const now = Date.now();
    const others = Object.entries(beats)
      .filter(([id, at]) => id !== this.instanceId && now - Number(at) <= this.ttlMs)
      .map(([id]) => id);
    const found = new Set<string>();
    if (!others.length) return found;
    const p = r.pipeline();
    for (const id of others) p.hmget(instanceKey(id), ...userIds);
    for (const [, values] of (await p.exec()) ?? []) {
      (values as (string | null)[]).forEach((v, i) => v !== null && found.add(userIds[i]));
    }
    return found;
  }

  private async quietly<T>(fn: (r: Redis) => Promise<T>): Promise<T | null> {
    if (!this.redis) return null;
    try {
      return await fn(this.redis);
    } catch (err) {
      this.logger.debug(`presence degraded to this instance: ${(err as Error).message}`);
      return null;
    }
  }
}
