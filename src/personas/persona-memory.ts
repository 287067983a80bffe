import { Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { AccessPolicy } from '../access/access.policy';
import type { AuthUser } from '../auth/auth-user';
import { AuditService } from '../audit/audit.service';
import { AppError } from '../common/errors';
import type { Env } from '../config/env';
import type { MessageDto } from '../messages/dto/message.dto';
import { MessageStore } from '../messages/message-store';
import { MetricsService } from '../metrics/metrics.service';
import type { PersonaMemoryDto } from './dto/persona-memory.dto';
import { LlmClient, type TokenUsage } from './llm-client';
import type { MessageUsage } from '../common/wire';
import { replyTokens } from './persona-usage';
import type { Persona } from './persona.entity';
import { PersonaMemoryStore, type StoredSummary } from './persona-memory.store';
import { PersonaStore } from './persona.store';
import {
  type ChatMessage,
  type PromptRoom,
  recentWindow,
  summariseMessages,
  transcriptLine,
  withSummary,
} from './prompt';

/** Most overflowed messages read for one summarise request (PERSONA_SUMMARY_BATCH_CHARS too). */
export const FOLD_MESSAGES = 100;

/** Temperature of summarise requests: a summary reports, it does not invent. */
const SUMMARY_TEMPERATURE = 0.2;

/**
 * How a summarise request is paid for, as a reply is: its estimate is reserved against the
 * day's budgets before it is made (false: refused, the request is not made), and settled with
 * what it cost once it ended, whatever its outcome. So summaries made at once see each other's
 * cost, and a budget is not overrun by them.
 */
export interface SummaryBudget {
  reserve(prompt: ChatMessage[], maxTokens: number): Promise<boolean>;
  settle(tokens: MessageUsage): Promise<void>;
}

/** A persona's history, as the reply path read it: the newest messages, and whether more exist. */
export interface History {
  items: MessageDto[];
  more: boolean;
}

/**
 * Persona memory (docs/personas.md, "Memory"): the request of a reply shows the newest history
 * that fits PERSONA_CONTEXT_*; what no longer fits is folded by the model into a rolling summary
 * per room and persona (persona_summaries), which the request gives right after the system
 * prompt. Runs inside a generation (on its per-persona-per-room queue), never on the path of a
 * person's message. Incremental: each summarise request folds only the messages that overflowed
 * since the last one (at most PERSONA_SUMMARY_BATCH_CHARS of them, the newest), into the
 * previous summary. A failed summarise request never fails the reply: it is logged, and the
 * reply goes with the summary there was (if any) and the recent messages.
 */
@Injectable()
export class PersonaMemory implements OnModuleDestroy {
  private readonly logger = new Logger('PersonaMemory');
  /** Aborted at shutdown: ends summarise requests in flight. */
  private readonly shutdown = new AbortController();
  private readonly s: {
    enabled: boolean;
    maxChars: number;
    batchChars: number;
    contextChars: number;
    idleTimeoutMs: number;
    maxMs: number;
  };

  constructor(
    private readonly store: PersonaMemoryStore,
    private readonly personas: PersonaStore,
    private readonly messages: MessageStore,
    private readonly llm: LlmClient,
    private readonly access: AccessPolicy,
    private readonly audit: AuditService,
    private readonly metrics: MetricsService,
    @InjectDataSource() private readonly db: DataSource,
    config: ConfigService<Env, true>,
  ) {
    const get = <K extends keyof Env>(k: K) => config.get(k, { infer: true });
    this.s = {
      enabled: get('PERSONA_SUMMARY_ENABLED'),
      maxChars: get('PERSONA_SUMMARY_MAX_CHARS'),
      batchChars: get('PERSONA_SUMMARY_BATCH_CHARS'),
      contextChars: get('PERSONA_CONTEXT_CHARS'),
      idleTimeoutMs: get('LLM_TIMEOUT_MS'),
      maxMs: get('PERSONA_MAX_REPLY_MS'),
    };
  }

  onModuleDestroy(): void {
    this.shutdown.abort();
  }

  /**
   * The messages of a reply's request: the system prompt, the summary of the older history
   * when the history overflowed the context (made or refreshed first when messages overflowed
   * since), and the recent messages. Never throws for a summarise failure. A summarise request
   * is reserved and settled through `budget` (the server's usage, else the estimate); refused,
   * the stored summary (if any) is used as it is.
   */
  async prompt(
    persona: Persona,
    room: PromptRoom,
    roomId: string,
    history: History,
    budget: SummaryBudget,
  ): Promise<ChatMessage[]> {
    const recent = recentWindow(persona, history.items, this.s.contextChars);
    const overflowed = recent.oldestId !== null && (recent.leftOut || history.more);
    if (!this.s.enabled || !overflowed) return withSummary(persona, room, recent.messages);
    const summary = await this.refresh(persona, room, roomId, recent.oldestId!, budget).catch(
      (err: unknown) => {
        this.logger.error(err instanceof Error ? err.stack : String(err));
        return null;
      },
    );
    return withSummary(persona, room, recent.messages, summary);
  }

  /** The summary to send: the stored one, with the messages older than `before` folded in. */
  private async refresh(
    persona: Persona,
    room: PromptRoom,
    roomId: string,
    before: number,
    budget: SummaryBudget,
  ): Promise<string | null> {
    const stored = await this.store.get(roomId, persona.id);
    const through = stored?.throughMessageId ?? 0;
    if (through >= before - 1) return stored?.summary ?? null;
    const older = (await this.messages.pageBefore(roomId, before, FOLD_MESSAGES)).items.filter(
      (m) => m.id > through,
    );
    // The newest overflowed messages that fit the batch; older unsummarised ones are skipped.
    const lines: string[] = [];
    let used = 0;
    let from = older.length;
    for (; from > 0; from--) {
      const line = transcriptLine(older[from - 1], persona)?.slice(0, this.s.batchChars);
      if (!line) continue;
      if (lines.length && used + line.length > this.s.batchChars) break;
      lines.push(line);
      used += line.length;
    }
    if (!lines.length) return stored?.summary ?? null;
    const newest = older[older.length - 1].id;

    const text = await this.summarise(persona, room, stored, lines.reverse(), budget);
    if (text === null) return stored?.summary ?? null;
    const saved = await this.store.save({
      roomId,
      personaId: persona.id,
      summary: text,
      throughMessageId: newest,
      folded: older.length - from,
      basedOn: stored ? stored.throughMessageId : null,
    });
    this.metrics.personaSummaries.inc({
      persona: persona.handle,
      outcome: saved ? 'saved' : 'superseded',
    });
    // Lost to a newer write or a reset: still a true summary for this request.
    return text;
  }

  /** Asks the model for the new summary; null (logged, counted) when that failed. */
  private async summarise(
    persona: Persona,
    room: PromptRoom,
    stored: StoredSummary | null,
    lines: string[],
    budget: SummaryBudget,
  ): Promise<string | null> {
    const { maxChars, idleTimeoutMs, maxMs } = this.s;
    const messages = summariseMessages(persona, room, stored?.summary ?? null, lines, maxChars);
    // About 3 characters a token, so the model can reach maxChars (the text is cut there).
    const maxTokens = Math.ceil(maxChars / 3);
    if (!(await budget.reserve(messages, maxTokens))) return null;
    const controller = new AbortController();
    const abort = () => controller.abort();
    this.shutdown.signal.addEventListener('abort', abort);
    let idle = setTimeout(abort, idleTimeoutMs);
    const total = setTimeout(abort, maxMs);
    let written = '';
    let usage: TokenUsage | null = null;
    try {
      const result = await this.llm.stream(
        {
          model: persona.model ?? this.llm.defaultModel,
          messages,
          temperature: SUMMARY_TEMPERATURE,
          maxTokens,
        },
        controller.signal,
        {
          onChunk: () => {
            clearTimeout(idle);
            idle = setTimeout(abort, idleTimeoutMs);
          },
          onText: (piece) => (written += piece),
        },
      );
      usage = result.usage;
      if (controller.signal.aborted) throw new Error('the summarise request timed out');
      const text = written.trim().slice(0, maxChars);
      if (!text) throw new Error('the model returned an empty summary');
      return text;
    } catch (err) {
      this.logger.warn(
        `summary of ${persona.handle} not refreshed: ${err instanceof Error ? err.message : String(err)}`,
      );
      this.metrics.personaSummaries.inc({ persona: persona.handle, outcome: 'failed' });
      return null;
    } finally {
      clearTimeout(idle);
      clearTimeout(total);
      this.shutdown.signal.removeEventListener('abort', abort);
      // Asked, it cost tokens, whatever came of it (as a reply's do).
      await budget.settle(replyTokens(usage, messages, written));
    }
  }

  /** GET …/summary: the persona's summary of the room (`summary: null` when there is none). */
  async view(user: AuthUser, roomId: string, personaId: string): Promise<PersonaMemoryDto> {
    await this.access.personaMemory(user, roomId);
    await this.persona(personaId);
    return toDto(roomId, personaId, await this.store.get(roomId, personaId));
  }

  /**
   * DELETE …/summary: forgets the summary (the next reply that overflows starts a new one).
   * Idempotent. In group rooms an admin action, audited with it; a conversation's owner
   * resetting their own is not (the audit log would tell admins the conversation exists).
   */
  async reset(user: AuthUser, roomId: string, personaId: string): Promise<void> {
    const { room } = await this.access.personaMemory(user, roomId);
    const persona = await this.persona(personaId);
    await this.db.transaction(async (em) => {
      const removed = await this.store.remove(em, roomId, personaId);
      if (!removed || room.kind === 'conversation') return;
      await this.audit.record(
        {
          actorId: user.id,
          action: 'persona.summary.reset',
          targetType: 'persona',
          targetId: personaId,
          roomId,
          details: {
            handle: persona.handle,
            throughMessageId: removed.throughMessageId,
            chars: removed.summary.length,
          },
        },
        em,
      );
    });
  }

  private async persona(id: string): Promise<Persona> {
    const persona = await this.personas.findById(id);
    if (!persona) throw AppError.notFound('Persona');
    return persona;
  }
}

function toDto(roomId: string, personaId: string, s: StoredSummary | null): PersonaMemoryDto {
  return {
    roomId,
    personaId,
    summary: s?.summary ?? null,
    throughMessageId: s?.throughMessageId ?? null,
    foldedMessages: s?.foldedMessages ?? 0,
    createdAt: s?.createdAt ?? null,
    updatedAt: s?.updatedAt ?? null,
  };
}
