import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { REDIS } from '../redis/redis.module';

/** The loop guards in force in a room (its overrides, else the server's defaults). */
export interface GuardLimits {
  /** Persona turns in one chain (started by a person's message that called personas). */
  maxConsecutiveTurns: number;
  /** Persona-to-persona replies per window in the room. */
  chainBudget: number;
  chainBudgetWindowMs: number;
  /** A persona called by another persona's reply must have been silent this long. */
  cooldownMs: number;
}

export type Guard = 'turns' | 'cooldown' | 'budget' | 'unavailable';

/** A persona-to-persona turn: granted, or refused by a guard (`notify`: the first refusal). */
export type TurnGrant = { ok: true } | { ok: false; guard: Guard; notify: boolean };

/** A chain's state is kept this long after its last turn (a safety net; chains end sooner). */
const CHAIN_TTL_MS = 24 * 3600_000;
/** A room's round-robin counter is forgotten after this long without a turn. */
const CURSOR_TTL_MS = 30 * 24 * 3600_000;

/** Memory only: expired entries are swept once this many are kept. */
const PRUNE_AT = 1000;

const chainKey = (room: string, chain: number) => `parlor:pturns:${room}:chain:${chain}`;
const coolKey = (room: string, persona: string) => `parlor:pturns:${room}:cool:${persona}`;
const budgetKey = (room: string) => `parlor:pturns:${room}:budget`;
const budgetNoticeKey = (room: string) => `parlor:pturns:${room}:budget-noticed`;
const cursorKey = (room: string) => `parlor:pturns:${room}:rr`;

/**
 * A person's message called personas: its chain starts with `ARGV[2]` turns (the personas it
 * called), no notice yet, and those personas' cooldowns start.
 * KEYS: chain, cool keys…  ARGV: chain ttl, turns, cooldown ms
 */
const HUMAN = `
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'turns', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
if tonumber(ARGV[3]) > 0 then
  for i = 2, #KEYS do redis.call('SET', KEYS[i], '1', 'PX', ARGV[3]) end
end
return 1`;

/**
 * A persona's reply calls another persona: the guards in order (consecutive turns, cooldown,
 * budget), all or nothing. A refusal notifies only the first time in the chain, and for the
 * budget only once per budget window.
 * KEYS: chain, cool, budget, budget-noticed  ARGV: max turns, cooldown ms, budget, window ms,
 * chain ttl
 */
const PERSONA = `
local turns = tonumber(redis.call('HGET', KEYS[1], 'turns') or '0')
local guard = nil
if turns >= tonumber(ARGV[1]) then guard = 'turns'
elseif tonumber(ARGV[2]) > 0 and redis.call('EXISTS', KEYS[2]) == 1 then guard = 'cooldown'
elseif tonumber(redis.call('GET', KEYS[3]) or '0') >= tonumber(ARGV[3]) then guard = 'budget'
end
if guard then
  local notify = 0
  if redis.call('HSETNX', KEYS[1], 'noticed', '1') == 1 then
    notify = 1
    if guard == 'budget' then
      local ttl = redis.call('PTTL', KEYS[3])
      if ttl < 1 then ttl = ARGV[4] end
      if not redis.call('SET', KEYS[4], '1', 'NX', 'PX', ttl) then notify = 0 end
    end
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return {guard, notify}
end
redis.call('HINCRBY', KEYS[1], 'turns', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[2], '1', 'PX', ARGV[2]) end
if redis.call('INCR', KEYS[3]) == 1 then redis.call('PEXPIRE', KEYS[3], ARGV[4]) end
return {'ok', 0}`;

interface MemoryChain {
  turns: number;
  noticed: boolean;
  /** Forgotten after this (ms since the epoch), as the Redis key expires. */
  until: number;
}

/**
 * The state of turn-taking that must hold across instances: each chain of persona turns (one per
 * person's message that called personas, keyed by that message's id: how many turns, whether
 * the room was told a guard stopped it; other people's messages do not touch it),
 * each persona's cooldown, each room's budget of persona-to-persona replies, and the
 * round-robin counter. In Redis when configured (each decision one atomic script, so two
 * instances cannot both take the last turn), in memory otherwise (one instance).
 *
 * While Redis is away, persona-to-persona turns are refused without a notice (a loop must not
 * run unguarded) and the round-robin counter falls back to this instance's memory.
 */
@Injectable()
export class TurnGuards {
  private readonly logger = new Logger('PersonaTurns');
  private readonly chains = new Map<string, MemoryChain>();
  /** Keys (as in Redis) → when they expire (ms since the epoch). */
  private readonly expiries = new Map<string, number>();
  private readonly budgets = new Map<string, { used: number; until: number }>();
  private readonly cursors = new Map<string, number>();

  constructor(@Inject(REDIS) private readonly redis: Redis | null) {}

  /**
   * A person's message (id `chainId`) called `speakers`: its chain starts. One that called none
   * starts nothing (and leaves other chains as they are).
   */
  async human(
    roomId: string,
    chainId: number,
    speakers: string[],
    cooldownMs: number,
  ): Promise<void> {
    if (!speakers.length) return;
    if (this.redis) {
      try {
        const keys = [chainKey(roomId, chainId), ...speakers.map((p) => coolKey(roomId, p))];
        await this.redis.eval(
          HUMAN,
          keys.length,
          ...keys,
          CHAIN_TTL_MS,
          speakers.length,
          cooldownMs,
        );
      } catch (err) {
        this.logger.warn(`turn state of ${roomId} not reset: ${String(err)}`);
      }
      return;
    }
    this.prune();
    const until = Date.now() + CHAIN_TTL_MS;
    this.chains.set(chainKey(roomId, chainId), { turns: speakers.length, noticed: false, until });
    if (cooldownMs > 0) {
      for (const p of speakers) this.expiries.set(coolKey(roomId, p), Date.now() + cooldownMs);
    }
  }

  /** Persona `personaId`'s reply was saved: its cooldown starts again from now. */
  async spoke(roomId: string, personaId: string, cooldownMs: number): Promise<void> {
    if (cooldownMs <= 0) return;
    if (this.redis) {
      try {
        await this.redis.set(coolKey(roomId, personaId), '1', 'PX', cooldownMs);
      } catch (err) {
        this.logger.warn(`cooldown in ${roomId} not refreshed: ${String(err)}`);
      }
      return;
    }
    this.expiries.set(coolKey(roomId, personaId), Date.now() + cooldownMs);
  }

  /**
   * Whether persona `personaId` may take a turn in chain `chainId`, called by another
   * persona's reply.
   */
  async persona(
    roomId: string,
    chainId: number,
    personaId: string,
    l: GuardLimits,
  ): Promise<TurnGrant> {
    if (this.redis) {
      try {
        const [result, notify] = (await this.redis.eval(
          PERSONA,
          4,
          chainKey(roomId, chainId),
          coolKey(roomId, personaId),
          budgetKey(roomId),
          budgetNoticeKey(roomId),
          l.maxConsecutiveTurns,
          l.cooldownMs,
          l.chainBudget,
          l.chainBudgetWindowMs,
          CHAIN_TTL_MS,
        )) as [string, number];
        return result === 'ok'
          ? { ok: true }
          : { ok: false, guard: result as Guard, notify: !!notify };
      } catch (err) {
        this.logger.warn(`persona turn in ${roomId} refused, Redis failed: ${String(err)}`);
        return { ok: false, guard: 'unavailable', notify: false };
      }
    }
    return this.personaInMemory(roomId, chainId, personaId, l);
  }

  /** The room's next round-robin turn number (1, 2, 3…), shared by every instance. */
  async nextTurn(roomId: string): Promise<number> {
    if (this.redis) {
      try {
        const [[err, n]] = (await this.redis
          .multi()
          .incr(cursorKey(roomId))
          .pexpire(cursorKey(roomId), CURSOR_TTL_MS)
          .exec())!;
        if (err) throw err;
        return Number(n);
      } catch (err) {
        this.logger.warn(`round-robin counter of ${roomId} from memory: ${String(err)}`);
      }
    }
    const n = (this.cursors.get(roomId) ?? 0) + 1;
    this.cursors.set(roomId, n);
    return n;
  }

  /** A deleted room's state (memory only: Redis keys expire by themselves). */
  forgetRoom(roomId: string): void {
    this.budgets.delete(roomId);
    this.cursors.delete(roomId);
    const prefix = `parlor:pturns:${roomId}:`;
    for (const key of this.expiries.keys()) if (key.startsWith(prefix)) this.expiries.delete(key);
    for (const key of this.chains.keys()) if (key.startsWith(prefix)) this.chains.delete(key);
  }

  /** Drops expired chains, cooldowns and notice marks once there are many. */
  private prune(): void {
    const now = Date.now();
    if (this.expiries.size >= PRUNE_AT) {
      for (const [key, until] of this.expiries) if (until <= now) this.expiries.delete(key);
    }
    if (this.chains.size >= PRUNE_AT) {
      for (const [key, c] of this.chains) if (c.until <= now) this.chains.delete(key);
    }
  }

  /** The same decisions as the PERSONA script, for a single instance. */
  private personaInMemory(
    roomId: string,
    chainId: number,
    personaId: string,
    l: GuardLimits,
  ): TurnGrant {
    const now = Date.now();
    const ck = chainKey(roomId, chainId);
    let chain = this.chains.get(ck);
    if (!chain || chain.until <= now) chain = { turns: 0, noticed: false, until: 0 };
    chain.until = now + CHAIN_TTL_MS;
    this.chains.set(ck, chain);
    const cool = coolKey(roomId, personaId);
    let budget = this.budgets.get(roomId);
    if (budget && budget.until <= now) budget = undefined;
    let guard: Guard | null = null;
    if (chain.turns >= l.maxConsecutiveTurns) guard = 'turns';
    else if (l.cooldownMs > 0 && (this.expiries.get(cool) ?? 0) > now) guard = 'cooldown';
    else if ((budget?.used ?? 0) >= l.chainBudget) guard = 'budget';
    if (guard) {
      let notify = !chain.noticed;
      chain.noticed = true;
      if (notify && guard === 'budget') {
        const key = budgetNoticeKey(roomId);
        notify = (this.expiries.get(key) ?? 0) <= now;
        if (notify) this.expiries.set(key, budget?.until ?? now + l.chainBudgetWindowMs);
      }
      return { ok: false, guard, notify };
    }
    chain.turns++;
    if (l.cooldownMs > 0) this.expiries.set(cool, now + l.cooldownMs);
    budget ??= { used: 0, until: now + l.chainBudgetWindowMs };
    budget.used++;
    this.budgets.set(roomId, budget);
    return { ok: true };
  }
}
