import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { AppError, ErrorCode } from '../common/errors';
import type { PersonaStreamSnapshot } from '../common/wire';
import type { Env } from '../config/env';
import { RedisChannels } from '../redis/redis-channels';
import { REDIS } from '../redis/redis.module';
import type { RoomKind } from '../rooms/room.entity';

/** What every instance knows of a reply in progress (besides its text). */
export interface StreamRecord {
  messageId: string;
  roomId: string;
  roomKind: RoomKind;
  personaId: string;
  personaHandle: string;
  replyToId: number | null;
  /** Who triggered it (they may stop it, see AccessPolicy.cancelStream). */
  userId: string;
  /** When it started (ms since the epoch), for the duration metric of an interrupted reply. */
  startedAt: number;
  /** The prompt's estimated tokens, counted at the start (the usage of an interrupted reply). */
  promptTokens?: number;
  /** The completion tokens reserved at the start, replaced when an interrupted reply is settled. */
  reservedTokens?: number;
}

export interface StreamState extends StreamRecord {
  text: string;
  nextSeq: number;
}

const ALL = 'parlor:pstreams';
const SWEEP_LOCK = 'parlor:pstreams:sweep';
const CANCEL_CHANNEL = 'parlor:pstreams:cancel';
const roomKey = (roomId: string) => `parlor:pstreams:room:${roomId}`;
const stateKey = (id: string) => `parlor:pstream:${id}`;
const textKey = (id: string) => `parlor:pstream:${id}:text`;
const aliveKey = (id: string) => `parlor:pstream:${id}:alive`;
/**
 * Written by the sweeper in the transaction that claims a stream: "another instance ended it".
 * A stream whose record is gone without it vanished (Redis lost its data): it was not taken.
 */
const takenKey = (id: string) => `parlor:pstream:${id}:taken`;

/**
 * Appends a delta only while the stream exists: 1 appended, 0 the record vanished (not taken:
 * the reply goes on unshared), 2 another instance claimed it (the reply must stop).
 */
const APPEND = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  if redis.call('EXISTS', KEYS[4]) == 1 then return 2 end
  return 0
end
redis.call('APPEND', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'nextSeq', ARGV[2])
redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
return 1`;

/**
 * Persona replies in progress, where every instance can read them: a Redis hash per stream
 * (record and next seq), its text (a string, appended to), a heartbeat key that lives
 * PERSONA_STREAM_STALE_MS and is refreshed while the reply streams, and a set per room of its
 * streams. Without Redis, the same in memory (one instance: nothing else could read it).
 *
 * Writes happen before the matching event is emitted, so a reader that subscribed to the room
 * first and reads second misses nothing: a delta is either in the text it read (seq below
 * `nextSeq`) or reaches it after the read.
 *
 * Every instance sweeps (one at a time, under a lock) for streams whose heartbeat expired: their
 * instance died. The sweeper claims such a stream (deletes it atomically, so one ends it) and
 * hands it to `onStale`. Stop requests for streams of other instances travel on a channel.
 */
@Injectable()
export class PersonaStreams implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('PersonaStreams');
  readonly instanceId = randomUUID();
  private readonly memory = new Map<string, StreamState>();
  /**
   * Streams this instance generates and shares (heartbeats are refreshed for them): only once
   * their record was written, and no longer once it vanished without being claimed.
   */
  private readonly own = new Set<string>();
  private unlisten = () => {};
  private timers: NodeJS.Timeout[] = [];
  /** The heartbeat or sweep under way (one at a time; shutdown waits for it). */
  private tick: Promise<void> | null = null;
  private readonly staleMs: number;
  /** How long a stream's keys live at most (a reply cannot outlast PERSONA_MAX_REPLY_MS). */
  private readonly ttlMs: number;

  /** Set by PersonaRepliesService. */
  onCancel: (messageId: string) => void = () => {};
  onLost: (messageId: string) => void = () => {};
  onStale: (state: StreamState) => Promise<void> = async () => {};

  constructor(
    @Inject(REDIS) private readonly redis: Redis | null,
    private readonly channels: RedisChannels,
    config: ConfigService<Env, true>,
  ) {
    this.staleMs = config.get('PERSONA_STREAM_STALE_MS', { infer: true });
    this.ttlMs = config.get('PERSONA_MAX_REPLY_MS', { infer: true }) + 10 * this.staleMs;
  }

  /** True when streams are shared through Redis (several instances). */
  get shared(): boolean {
    return this.redis !== null;
  }

  onModuleInit(): void {
    if (!this.redis) return;
    this.unlisten = this.channels.listen(CANCEL_CHANNEL, {
      message: (id) => {
        if (this.own.has(id)) this.onCancel(id);
      },
    });
    const every = (ms: number, fn: () => Promise<void>) => {
      const timer = setInterval(() => {
        if (this.tick) return;
        this.tick = fn()
          .catch((err: unknown) => this.logger.warn(`${String(err)}`))
          .finally(() => (this.tick = null));
      }, ms);
      timer.unref();
      this.timers.push(timer);
    };
    every(Math.max(100, Math.floor(this.staleMs / 3)), () => this.heartbeat());
    every(Math.max(100, Math.floor(this.staleMs / 2)), () => this.sweep());
  }

  /** No Redis command of ours is left in flight when the shared client disconnects. */
  async onModuleDestroy(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.unlisten();
    await this.tick;
  }

  /**
   * A reply starts: recorded with no text. False when Redis refused it: the reply goes on
   * unshared (not heartbeated, so never reported lost).
   */
  async open(r: StreamRecord): Promise<boolean> {
    if (!this.redis) {
      this.own.add(r.messageId);
      this.memory.set(r.messageId, { ...r, text: '', nextSeq: 0 });
      return true;
    }
    const fields: Record<string, string> = {
      ...Object.fromEntries(Object.entries(r).map(([k, v]) => [k, String(v ?? '')])),
      nextSeq: '0',
    };
    try {
      await this.redis
        .multi()
        .hset(stateKey(r.messageId), fields)
        .pexpire(stateKey(r.messageId), this.ttlMs)
        .set(textKey(r.messageId), '', 'PX', this.ttlMs)
        .set(aliveKey(r.messageId), '1', 'PX', this.staleMs)
        .sadd(roomKey(r.roomId), r.messageId)
        .pexpire(roomKey(r.roomId), this.ttlMs)
        .sadd(ALL, r.messageId)
        .exec();
      this.own.add(r.messageId);
      return true;
    } catch (err) {
      // The answer may be lost while the write was applied (a connection reset): a record
      // there is shared, and must be heartbeated, or a sweeper would end it.
      const written = await this.redis
        .exists(stateKey(r.messageId))
        .then((n) => n === 1)
        .catch(() => false);
      if (written) {
        this.own.add(r.messageId);
        return true;
      }
      this.logger.warn(`stream ${r.messageId} not shared: ${String(err)}`);
      return false;
    }
  }

  /**
   * The delta numbered `seq` was produced. False when another instance claimed the stream (this
   * one was taken for dead): the reply must stop. A record that vanished unclaimed (Redis lost
   * its data) is not a claim: true, and the reply goes on unshared.
   */
  async append(id: string, delta: string, seq: number): Promise<boolean> {
    if (!this.redis) {
      const s = this.memory.get(id);
      if (s) {
        s.text += delta;
        s.nextSeq = seq + 1;
      }
      return true;
    }
    try {
      const keys = [stateKey(id), textKey(id), aliveKey(id), takenKey(id)];
      const done = await this.redis.eval(APPEND, 4, ...keys, delta, seq + 1, this.staleMs);
      if (done === 0) this.vanished(id);
      return done !== 2;
    } catch (err) {
      // Redis away: the reply goes on for those already watching it.
      this.logger.warn(`stream ${id}: delta not shared: ${String(err)}`);
      return true;
    }
  }

  /**
   * The reply ended: removed. False when another instance had claimed it (then it must not be
   * saved or announced again); true otherwise, also when its record had vanished unclaimed.
   */
  async close(id: string, roomId: string): Promise<boolean> {
    this.own.delete(id);
    if (!this.redis) return this.memory.delete(id);
    try {
      const res = await this.redis
        .multi()
        .del(stateKey(id))
        .del(textKey(id), aliveKey(id))
        .srem(roomKey(roomId), id)
        .srem(ALL, id)
        .exists(takenKey(id))
        .exec();
      return res?.[0]?.[1] === 1 || res?.[4]?.[1] !== 1;
    } catch (err) {
      this.logger.warn(`stream ${id} not removed: ${String(err)}`);
      return true;
    }
  }

  /**
   * One stream's record, wherever it is generated; null when it is not streaming. Redis away:
   * 503 UNAVAILABLE (whether it streams elsewhere cannot be known).
   */
  async get(id: string): Promise<StreamRecord | null> {
    if (!this.redis) return this.memory.get(id) ?? null;
    try {
      return parse(await this.redis.hgetall(stateKey(id)), '');
    } catch (err) {
      throw unavailable(err);
    }
  }

  /** The room's replies in progress: text so far and the next delta's seq. */
  async inRoom(roomId: string): Promise<PersonaStreamSnapshot[]> {
    let states: StreamState[];
    if (!this.redis) {
      states = [...this.memory.values()].filter((s) => s.roomId === roomId);
    } else {
      let ids: string[];
      let res: [Error | null, unknown][];
      try {
        ids = await this.redis.smembers(roomKey(roomId));
        if (!ids.length) return [];
        const tx = this.redis.multi();
        for (const id of ids) tx.hgetall(stateKey(id)).get(textKey(id));
        res = (await tx.exec()) ?? [];
      } catch (err) {
        // Redis away: the room opens without its replies in progress (they end as usual).
        this.logger.warn(`replies in progress of ${roomId} not read: ${String(err)}`);
        return [];
      }
      states = [];
      ids.forEach((_, i) => {
        const state = parse(
          res[2 * i]?.[1] as Record<string, string>,
          res[2 * i + 1]?.[1] as string,
        );
        if (state) states.push(state);
      });
    }
    return states
      .sort((a, b) => a.startedAt - b.startedAt)
      .map((s) => ({
        messageId: s.messageId,
        roomId: s.roomId,
        personaId: s.personaId,
        replyToId: s.replyToId,
        text: s.text,
        nextSeq: s.nextSeq,
      }));
  }

  /** Asks the instance generating `id` to stop it (this one's are stopped by the caller). */
  async requestCancel(id: string): Promise<void> {
    try {
      await this.redis?.publish(CANCEL_CHANNEL, id);
    } catch (err) {
      throw unavailable(err);
    }
  }

  /**
   * Keeps this instance's streams alive. A stream another instance claimed meanwhile (its
   * tombstone) is reported lost; one whose record vanished unclaimed (Redis restarted empty)
   * goes on unshared.
   */
  private async heartbeat(): Promise<void> {
    if (!this.redis || !this.own.size) return;
    const ids = [...this.own];
    const tx = this.redis.multi();
    for (const id of ids) {
      tx.exists(stateKey(id)).exists(takenKey(id)).set(aliveKey(id), '1', 'PX', this.staleMs);
    }
    const res = (await tx.exec()) ?? [];
    ids.forEach((id, i) => {
      if (res[3 * i]?.[1] !== 0 || !this.own.has(id)) return;
      if (res[3 * i + 1]?.[1] === 1) this.onLost(id);
      else this.vanished(id);
    });
  }

  /** A stream's record vanished without a claim: no longer heartbeated; the reply goes on. */
  private vanished(id: string): void {
    if (!this.own.delete(id)) return;
    this.logger.warn(
      `stream ${id}: its shared state vanished (Redis lost it); not shared any more`,
    );
  }

  /**
   * Ends the streams whose heartbeat expired. One instance sweeps at a time (a lock as long as
   * the sweep interval); each dead stream is claimed by deleting it, so it is ended once.
   */
  async sweep(): Promise<void> {
    const redis = this.redis;
    if (!redis) return;
    const lock = await redis.set(SWEEP_LOCK, this.instanceId, 'PX', this.staleMs / 2, 'NX');
    if (lock !== 'OK') return;
    const ids = await redis.smembers(ALL);
    if (!ids.length) return;
    const alive = await Promise.all(ids.map((id) => redis.exists(aliveKey(id))));
    for (const [i, id] of ids.entries()) {
      if (alive[i] || this.own.has(id)) continue;
      const res = await redis
        .multi()
        .hgetall(stateKey(id))
        .get(textKey(id))
        .del(stateKey(id), textKey(id))
        .srem(ALL, id)
        .set(takenKey(id), this.instanceId, 'PX', this.ttlMs)
        .exec();
      const state = parse(res?.[0]?.[1] as Record<string, string>, res?.[1]?.[1] as string);
      if (!state || res?.[2]?.[1] === 0) continue;
      await redis.srem(roomKey(state.roomId), id);
      this.logger.warn(`reply ${id} in ${state.roomId}: its instance stopped; ending it`);
      await this.onStale(state);
    }
  }
}

/** Redis away: what the caller is told (503, retry shortly), never an INTERNAL. */
function unavailable(err: unknown): AppError {
  new Logger('PersonaStreams').warn(`Redis unavailable: ${String(err)}`);
  return new AppError(
    ErrorCode.UNAVAILABLE,
    'Replies in progress cannot be reached right now',
    undefined,
    1000,
  );
}

function parse(h: Record<string, string> | undefined, text: string | null): StreamState | null {
  if (!h?.messageId) return null;
  return {
    messageId: h.messageId,
    roomId: h.roomId,
    roomKind: h.roomKind as RoomKind,
    personaId: h.personaId,
    personaHandle: h.personaHandle,
    replyToId: h.replyToId ? Number(h.replyToId) : null,
    userId: h.userId,
    startedAt: Number(h.startedAt),
    ...(h.promptTokens ? { promptTokens: Number(h.promptTokens) } : {}),
    ...(h.reservedTokens ? { reservedTokens: Number(h.reservedTokens) } : {}),
    text: text ?? '',
    nextSeq: Number(h.nextSeq ?? 0),
  };
}
