import { Injectable, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { AppError, ErrorCode } from '../common/errors';
import { RateLimiter } from '../common/rate-limiter';
import type { MessageUsage } from '../common/wire';
import type { Env } from '../config/env';
import { MessageWriter } from '../messages/message-writer';
import { MetricsService } from '../metrics/metrics.service';
import type { UsageQuery, UsagePageDto } from './dto/usage.dto';
import { estimateTokens, type TokenUsage } from './llm-client';
import type { Persona } from './persona.entity';
import {
  PersonaUsageStore,
  type BudgetRefusal,
  type Budgets,
  type UsageKey,
} from './persona-usage.store';

/** A refusal notice is posted at most once per room and budget in this window (no storm). */
const NOTICE_WINDOW_MS = 60_000;

/** The UTC day of an instant, YYYY-MM-DD: the day a reply's tokens count for. */
export function usageDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** The tokens of a prompt's message texts, estimated (see `estimateTokens`). */
export function promptEstimate(prompt: { content: string }[]): number {
  return estimateTokens(prompt.map((p) => p.content).join('\n'));
}

/**
 * The tokens of one generation: the model's `usage` when it sent one, else the documented
 * estimate (one token per 4 characters, rounded up) of the prompt's texts and of the reply.
 */
export function replyTokens(
  usage: TokenUsage | null,
  prompt: { content: string }[],
  text: string,
): MessageUsage {
  return usage
    ? { promptTokens: usage.prompt, completionTokens: usage.completion, estimated: false }
    : {
        promptTokens: promptEstimate(prompt),
        completionTokens: estimateTokens(text),
        estimated: true,
      };
}

/**
 * The persona id the director's requests are counted under in persona_usage_daily (no persona
 * has it; the persona budget does not apply to it).
 */
export const DIRECTOR_ID = '00000000-0000-0000-0000-000000000000';

/** Who a request is for, as the budgets and their notice need it. */
export interface BudgetAsk {
  roomId: string;
  userId: string;
  /** Named in the notice when the user's budget is used up. */
  username: string;
  persona: Pick<Persona, 'id' | 'displayName' | 'dailyTokenBudget'>;
  now?: number;
}

/** The director, as the budgets see it: no persona budget, "Personas" in a notice. */
export const DIRECTOR_PERSONA: BudgetAsk['persona'] = {
  id: DIRECTOR_ID,
  displayName: 'Personas',
  dailyTokenBudget: 0,
};

/** What a request other than a reply was for (the `outcome` of its tokens in the metrics). */
export type ExtraRequest = 'summary' | 'director';

/** A reply counted against the budgets: what its settlement needs. */
export interface Reservation extends UsageKey {
  /** The prompt's estimated tokens, counted when the reply started. */
  promptTokens: number;
  /** The completion tokens counted when it started (the most it may write), replaced when it ends. */
  completionTokens: number;
}

/**
 * Token usage and daily budgets of persona replies (docs/personas.md "Usage and budgets").
 *
 * A reply is counted when it starts: `reserve` checks the day's budgets (user who called the
 * persona, room, persona, global) and, when none is used up, adds one generation, the prompt's
 * estimated tokens and the most the reply may write (the persona's maxTokens) to the day's row,
 * under one advisory lock: replies in flight count at their worst, so concurrent replies cannot
 * overrun a budget together. When the reply ends, `settle` replaces both with the real prompt
 * and completion tokens (the model's `usage`, else the estimate). A refused reply gets one room notice per room and budget per
 * minute, with the code BUDGET_EXHAUSTED in its text.
 */
@Injectable()
export class PersonaUsageService {
  private readonly logger = new Logger('PersonaUsage');
  private readonly defaults: Budgets;

  constructor(
    private readonly store: PersonaUsageStore,
    private readonly writer: MessageWriter,
    private readonly limiter: RateLimiter,
    private readonly metrics: MetricsService,
    config: ConfigService<Env, true>,
  ) {
    const get = <K extends keyof Env>(k: K) => config.get(k, { infer: true });
    this.defaults = {
      user: get('PERSONA_DAILY_TOKENS_USER'),
      room: get('PERSONA_DAILY_TOKENS_ROOM'),
      persona: get('PERSONA_DAILY_TOKENS_PERSONA'),
      global: get('PERSONA_DAILY_TOKENS_GLOBAL'),
    };
  }

  /**
   * Counts a reply about to start against today's budgets (a summarise request too, with
   * `generation: false`). Null when a budget is used up: the room was told (at most once a
   * minute per budget), and the request must not be made.
   */
  async reserve(
    r: BudgetAsk & { prompt: { content: string }[]; maxTokens: number },
    { generation = true }: { generation?: boolean } = {},
  ): Promise<Reservation | null> {
    const now = r.now ?? Date.now();
    const key = usageKey(r, now);
    const promptTokens = promptEstimate(r.prompt);
    const completionTokens = r.maxTokens;
    const refusal = await this.store.reserve(
      key,
      this.budgets(r),
      promptTokens,
      completionTokens,
      generation ? 1 : 0,
    );
    if (!refusal) return { ...key, promptTokens, completionTokens };
    await this.refused(r, refusal, now);
    return null;
  }

  /**
   * Whether a request counted afterwards (a summary, the director) may be made: false when a
   * budget is used up (the room was told, as for a reply). Nothing is reserved.
   */
  async allows(r: BudgetAsk): Promise<boolean> {
    const now = r.now ?? Date.now();
    const refusal = await this.store.check(usageKey(r, now), this.budgets(r));
    if (!refusal) return true;
    await this.refused(r, refusal, now);
    return false;
  }

  /**
   * The tokens of a request that is not a reply (a summary: the reply's persona; the
   * director: DIRECTOR_ID), added to the day's sums without a generation, and to the tokens
   * metric with `outcome` = what it was for. Never throws.
   */
  async spend(r: BudgetAsk, what: ExtraRequest, label: string, t: MessageUsage): Promise<void> {
    this.countTokens(label, what, t);
    try {
      await this.store.add(usageKey(r, r.now ?? Date.now()), t.promptTokens, t.completionTokens);
    } catch (err) {
      this.logger.warn(`usage of a ${what} request in ${r.roomId} not counted: ${String(err)}`);
    }
  }

  /** `parlor_persona_tokens_total` of one request, by persona label and outcome. */
  countTokens(persona: string, outcome: string, t: MessageUsage): void {
    const source = t.estimated ? 'estimate' : 'usage';
    const labels = { persona, outcome, source };
    if (t.promptTokens > 0)
      this.metrics.personaTokens.inc({ ...labels, kind: 'prompt' }, t.promptTokens);
    if (t.completionTokens > 0)
      this.metrics.personaTokens.inc({ ...labels, kind: 'completion' }, t.completionTokens);
  }

  private budgets(r: BudgetAsk): Budgets {
    return { ...this.defaults, persona: r.persona.dailyTokenBudget ?? this.defaults.persona };
  }

  /** The refusal notice, at most once a minute per room and budget. */
  private async refused(r: BudgetAsk, refusal: BudgetRefusal, now: number): Promise<void> {
    const scopeKey = { user: r.userId, room: r.roomId, persona: r.persona.id, global: '' };
    const notice = this.limiter.hit(
      `persona-budget-notice:${r.roomId}:${refusal.scope}:${scopeKey[refusal.scope]}`,
      1,
      NOTICE_WINDOW_MS,
    );
    if (notice.allowed) {
      const text = budgetNotice(r.persona.displayName, r.username, refusal, now);
      await this.writer.notice(r.roomId, text).catch((err: unknown) => {
        this.logger.warn(`notice not saved in ${r.roomId}: ${String(err)}`);
      });
    }
  }

  /**
   * A reply ended: its real tokens replace what was reserved (the prompt's estimate and the
   * most it could write). Never throws (the reply is saved regardless; a failure is logged).
   */
  async settle(reservation: Reservation, tokens: MessageUsage): Promise<void> {
    try {
      await this.store.add(
        reservation,
        tokens.promptTokens - reservation.promptTokens,
        tokens.completionTokens - reservation.completionTokens,
      );
    } catch (err) {
      this.logger.warn(`usage of a reply in ${reservation.roomId} not counted: ${String(err)}`);
    }
  }

  /**
   * A summarise request's reservation settled with what it cost, and its tokens counted in
   * the tokens metric (`outcome` = what it was for). Never throws.
   */
  async settleRequest(
    reservation: Reservation,
    what: ExtraRequest,
    label: string,
    t: MessageUsage,
  ): Promise<void> {
    this.countTokens(label, what, t);
    await this.settle(reservation, t);
  }

  /**
   * A reservation whose reply never started (stopped before its request was sent): taken back
   * whole, its generation too. Never throws.
   */
  async release(reservation: Reservation): Promise<void> {
    try {
      await this.store.add(
        reservation,
        -reservation.promptTokens,
        -reservation.completionTokens,
        -1,
      );
    } catch (err) {
      this.logger.warn(`reservation in ${reservation.roomId} not released: ${String(err)}`);
    }
  }

  /** GET /admin/usage: sums per user, room, persona or day, keyset by key. */
  async list(q: UsageQuery): Promise<UsagePageDto> {
    if (q.from && q.to && q.from > q.to) throw AppError.invalid('from must not be after to');
    const rows = await this.store.list(q.groupBy, q, q.after, q.limit + 1);
    const items = rows.slice(0, q.limit).map((r) => ({
      ...r,
      totalTokens: r.promptTokens + r.completionTokens,
    }));
    return {
      groupBy: q.groupBy,
      items,
      nextCursor: rows.length > q.limit ? items[items.length - 1].key : null,
    };
  }
}

function usageKey(r: BudgetAsk, now: number): UsageKey {
  return { day: usageDay(now), userId: r.userId, roomId: r.roomId, personaId: r.persona.id };
}

/** The refusal notice: which budget, its size, when it resets, and the code. */
export function budgetNotice(
  persona: string,
  username: string,
  r: BudgetRefusal,
  now: number,
): string {
  const who = {
    user: `@${username}`,
    room: 'this room',
    persona,
    global: 'this server',
  }[r.scope];
  const midnight = Date.parse(`${usageDay(now)}T00:00:00Z`) + 86_400_000;
  const minutes = Math.max(1, Math.ceil((midnight - now) / 60_000));
  const left =
    minutes >= 60 ? `${Math.floor(minutes / 60)} h ${minutes % 60} min` : `${minutes} min`;
  return (
    `${persona} will not reply: ${who} has used up today's ${r.scope} token budget ` +
    `(${r.limit} tokens). It resets at 00:00 UTC, in ${left}. ` +
    `[${ErrorCode.BUDGET_EXHAUSTED}:${r.scope}]`
  );
}
