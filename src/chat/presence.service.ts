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
 * Who is online: a user is online while at least one of their sockets is connected, on any
 * instance (tabs and devices counted).
 *
 * Without Redis this instance's counts are the truth. With Redis, each instance keeps its own
 * hash `userId → sockets` and a heartbeat; a user is online if any live instance has them. An
 * instance that dies without saying goodbye stops its heartbeat; within PRESENCE_TTL_MS +
 * PRESENCE_HEARTBEAT_MS another instance removes its hash and announces its users offline
 * (unless they are connected elsewhere). Redis errors degrade to this instance's view.
 */
@Injectable()
export class PresenceService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(PresenceService.name);
  private readonly local = new Map<string, number>();
  readonly instanceId = randomUUID();
  private timer?: NodeJS.Timeout;
  private readonly heartbeatMs: number;
  private readonly ttlMs: number;
  /** Called with users who went offline because their instance died. */
  onOffline: (userId: string) => void = () => undefined;

  constructor(
    @Inject(REDIS) private readonly redis: Redis | null,
    config: ConfigService<Env, true>,
  ) {
    this.heartbeatMs = config.get('PRESENCE_HEARTBEAT_MS', { infer: true });
    this.ttlMs = config.get('PRESENCE_TTL_MS', { infer: true });
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

  /** Returns true when this is the user's first socket anywhere (they just came online). */
  async connected(userId: string): Promise<boolean> {
    const n = this.socketCount(userId) + 1;
    this.local.set(userId, n);
    if (n > 1) return false;
    if (!this.redis) return true;
    const elsewhere = await this.quietly(async (r) => {
      await r.hset(instanceKey(this.instanceId), userId, 1);
      return this.onOtherInstances(r, [userId]);
    });
    return !elsewhere?.has(userId);
  }

  /** Returns true when this was the user's last socket anywhere (they just went offline). */
  async disconnected(userId: string): Promise<boolean> {
    const n = this.socketCount(userId) - 1;
    if (n > 0) {
      this.local.set(userId, n);
      return false;
    }
    this.local.delete(userId);
    if (!this.redis) return true;
    const elsewhere = await this.quietly(async (r) => {
      await r.hdel(instanceKey(this.instanceId), userId);
      return this.onOtherInstances(r, [userId]);
    });
    return !elsewhere?.has(userId);
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
        if (this.local.size)
          tx.hset(mine, Object.fromEntries([...this.local.keys()].map((u) => [u, 1])));
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
