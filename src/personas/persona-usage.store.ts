import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { retryOnConflict } from '../common/pg-errors';

/** Who a reply's tokens are counted for: one row of persona_usage_daily. */
export interface UsageKey {
  /** The UTC day, YYYY-MM-DD. */
  day: string;
  /** The person whose message called the persona. */
  userId: string;
  roomId: string;
  personaId: string;
}

/** The daily token budgets that apply to one reply (0: unlimited). */
export interface Budgets {
  user: number;
  room: number;
  persona: number;
  global: number;
}

export type BudgetScope = keyof Budgets;

/** A refused reservation: the first budget (user, room, persona, global) found used up. */
export interface BudgetRefusal {
  scope: BudgetScope;
  limit: number;
  /** Tokens spent today in that scope. */
  used: number;
}

export type UsageGroup = 'user' | 'room' | 'persona' | 'day';

export interface UsageFilter {
  from?: string;
  to?: string;
  userId?: string;
  roomId?: string;
  personaId?: string;
}

export interface UsageRow {
  key: string;
  /** users.username, rooms.name, personas.handle (null when gone); absent by day. */
  name?: string | null;
  generations: number;
  promptTokens: number;
  completionTokens: number;
}

/** Transaction-scoped: budget checks and reservations happen one at a time across instances. */
const BUDGET_LOCK = `SELECT pg_advisory_xact_lock(hashtextextended('parlor:persona-budget', 0))`;

/** Adds to a row (a first reply of the day creates it); deltas may be negative (a settlement). */
const ADD = `
  INSERT INTO persona_usage_daily AS d
         (day, user_id, room_id, persona_id, generations, prompt_tokens, completion_tokens)
  VALUES ($1::date, $2::uuid, $3::uuid, $4::uuid, $5::int, $6::bigint, $7::bigint)
  ON CONFLICT (day, user_id, room_id, persona_id) DO UPDATE
     SET generations = d.generations + excluded.generations,
         prompt_tokens = d.prompt_tokens + excluded.prompt_tokens,
         completion_tokens = d.completion_tokens + excluded.completion_tokens`;

/**
 * The key under which groupBy=room sums every conversation: conversations are their owner's
 * alone, so the report names none (sorts after every uuid).
 */
/** ADD's parameters. */
const addParams = (k: UsageKey, generations: number, prompt: number, completion: number) => [
  k.day,
  k.userId,
  k.roomId,
  k.personaId,
  generations,
  prompt,
  completion,
];

export const CONVERSATIONS_KEY = 'private';
export const CONVERSATIONS_NAME = 'private conversations';

/** Whether a usage row's room is a conversation (a named read of the rooms module's table). */
const IS_CONVERSATION = `EXISTS (SELECT 1 FROM rooms rc WHERE rc.id = d.room_id AND rc.kind = 'conversation')`;

/** Per group: the key column, and the name shown with it (a named read of its module's table). */
const GROUPS: Record<UsageGroup, { key: string; name: string | null; join: string }> = {
  user: {
    key: 'd.user_id::text',
    name: 'u.username',
    join: 'LEFT JOIN users u ON u.id = g.key::uuid',
  },
  room: {
    key: `CASE WHEN ${IS_CONVERSATION} THEN '${CONVERSATIONS_KEY}' ELSE d.room_id::text END`,
    name: `CASE WHEN g.key = '${CONVERSATIONS_KEY}' THEN '${CONVERSATIONS_NAME}' ELSE r.name END`,
    join: 'LEFT JOIN rooms r ON r.id::text = g.key',
  },
  persona: {
    key: 'd.persona_id::text',
    name: 'p.handle',
    join: 'LEFT JOIN personas p ON p.id = g.key::uuid',
  },
  day: { key: `to_char(d.day, 'YYYY-MM-DD')`, name: null, join: '' },
};

/**
 * The personas module's store of `persona_usage_daily`: the tokens persona replies cost, summed
 * per UTC day, user, room and persona. The only SQL on that table. `list` also reads the names
 * of users, rooms and personas (a named cross-module read, for the admin report).
 */
@Injectable()
export class PersonaUsageStore {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /**
   * Checks the day's budgets and, when none is used up, counts the reply: one generation, its
   * prompt's estimated tokens and the most it may write (`completionTokens`, its persona's
   * maxTokens), settled to the real figures when it ends. With any budget set, the check and
   * the count run under one advisory lock, so replies starting at once see each other's whole
   * reservation. The refusal, or null when the reply was counted.
   */
  reserve(
    k: UsageKey,
    budgets: Budgets,
    promptTokens: number,
    completionTokens: number,
    generations = 1,
  ): Promise<BudgetRefusal | null> {
    const limited = Object.values(budgets).some((b) => b > 0);
    return retryOnConflict(() =>
      this.db.transaction(async (em) => {
        if (limited) {
          await em.query(BUDGET_LOCK);
          const refusal = await this.refusal(em, k, budgets);
          if (refusal) return refusal;
        }
        await em.query(ADD, addParams(k, generations, promptTokens, completionTokens));
        return null;
      }),
    );
  }

  /**
   * The first budget found used up, or null: a check before a request that is counted
   * afterwards (a summary, the director), without reserving anything.
   */
  async check(k: UsageKey, budgets: Budgets): Promise<BudgetRefusal | null> {
    if (!Object.values(budgets).some((b) => b > 0)) return null;
    return this.refusal(this.db.manager, k, budgets);
  }

  private async refusal(
    em: EntityManager,
    k: UsageKey,
    budgets: Budgets,
  ): Promise<BudgetRefusal | null> {
    // The day's rows by the primary key's prefix; only those of this user, room or persona
    // unless a global budget needs them all.
    const [used] = await em.query<Record<BudgetScope, string>[]>(
      `SELECT COALESCE(sum(t) FILTER (WHERE user_id = $2), 0) AS "user",
              COALESCE(sum(t) FILTER (WHERE room_id = $3), 0) AS room,
              COALESCE(sum(t) FILTER (WHERE persona_id = $4), 0) AS persona,
              COALESCE(sum(t), 0) AS global
         FROM (SELECT user_id, room_id, persona_id, prompt_tokens + completion_tokens AS t
                 FROM persona_usage_daily
                WHERE day = $1::date
                  AND ($5::boolean OR user_id = $2 OR room_id = $3 OR persona_id = $4)) x`,
      [k.day, k.userId, k.roomId, k.personaId, budgets.global > 0],
    );
    for (const scope of ['user', 'room', 'persona', 'global'] as const) {
      const limit = budgets[scope];
      const spent = Number(used[scope]);
      if (limit > 0 && spent >= limit) return { scope, limit, used: spent };
    }
    return null;
  }

  /** Adds tokens to a reply's row (no new generation): the settlement of a reservation. */
  async add(
    k: UsageKey,
    promptTokens: number,
    completionTokens: number,
    generations = 0,
  ): Promise<void> {
    await this.db.query(ADD, addParams(k, generations, promptTokens, completionTokens));
  }

  /**
   * Sums by `group` over the days from..to (inclusive) and the filters, ordered by key, after
   * the key `after` (keyset), at most `limit` rows. By room, conversations are one row
   * (CONVERSATIONS_KEY), and a conversation's id as the room filter matches nothing, as an
   * unknown room's does.
   */
  async list(
    group: UsageGroup,
    f: UsageFilter,
    after: string | undefined,
    limit: number,
  ): Promise<UsageRow[]> {
    const g = GROUPS[group];
    const rows = await this.db.query<
      {
        key: string;
        name: string | null;
        generations: string;
        prompt_tokens: string;
        completion_tokens: string;
      }[]
    >(
      `WITH g AS (
         SELECT ${g.key} AS key, sum(d.generations) AS generations,
                sum(d.prompt_tokens) AS prompt_tokens, sum(d.completion_tokens) AS completion_tokens
           FROM persona_usage_daily d
          WHERE ($1::date IS NULL OR d.day >= $1::date) AND ($2::date IS NULL OR d.day <= $2::date)
            AND ($3::uuid IS NULL OR d.user_id = $3)
            AND ($4::uuid IS NULL OR (d.room_id = $4 AND NOT ${IS_CONVERSATION}))
            AND ($5::uuid IS NULL OR d.persona_id = $5)
          GROUP BY 1)
       SELECT g.*, ${g.name ?? 'NULL::text'} AS name
         FROM g ${g.join}
        WHERE $6::text IS NULL OR g.key > $6::text
        ORDER BY g.key
        LIMIT $7`,
      [
        f.from ?? null,
        f.to ?? null,
        f.userId ?? null,
        f.roomId ?? null,
        f.personaId ?? null,
        after ?? null,
        limit,
      ],
    );
    return rows.map((r) => ({
      key: r.key,
      ...(group === 'day' ? {} : { name: r.name }),
      generations: Number(r.generations),
      promptTokens: Number(r.prompt_tokens),
      completionTokens: Number(r.completion_tokens),
    }));
  }
}
