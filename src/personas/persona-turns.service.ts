import { Injectable, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { Env } from '../config/env';
import type { MessageDto } from '../messages/dto/message.dto';
import { MessageStore } from '../messages/message-store';
import { LlmClient, type CompletionResult } from './llm-client';
import { mentionedHandles } from './mentions';
import { DEFAULT_TURN_SETTINGS, type TurnSettings } from './persona-turn.store';
import { PersonaStore, type RoomPersonas, type RoomPersonaSummary } from './persona.store';
import { DIRECTOR_PERSONA, PersonaUsageService, replyTokens } from './persona-usage';
import { type Guard, type GuardLimits, TurnGuards } from './turn-guards';
import {
  autoSpeakers,
  directorMessages,
  nextAfter,
  parseDirectorAnswer,
  roundRobinSpeaker,
} from './turn-selector';

/** Latest messages the director reads. */
const DIRECTOR_HISTORY = 12;
/** The director answers with a handle: a few tokens. */
const DIRECTOR_MAX_TOKENS = 16;

/**
 * A chain of persona turns: the person's message that started it (its id), and that person
 * (billed for the chain's requests, the director's too).
 */
export interface Chain {
  id: number;
  userId: string;
  username: string;
}

/** Whom a persona's reply calls, and the room's notice when a loop guard refused a turn. */
export interface FollowUp {
  speakers: RoomPersonaSummary[];
  /** The chain's first refusal only (one notice per chain, see TurnGuards). */
  notice: string | null;
}

/**
 * Who speaks in a group room with personas (docs/personas.md, "Turn-taking"). Decides only:
 * PersonaRepliesService asks it who answers a person's message (`forHuman`) and whom a
 * persona's saved reply calls (`forReply`), and queues those replies.
 *
 * Every policy lets an explicit `@handle` call that persona; the policy decides when a
 * message mentions none: `mention` nobody, `round-robin` the next persona in the room's order
 * (a counter shared by every instance through TurnGuards), `auto` the seeded talkativeness
 * draw (`autoSpeakers`), `director` the model (one short non-streaming request; on failure
 * nobody, as with `mention`).
 *
 * With cross-talk on, a persona's reply calls the personas it mentions, else the policy's
 * next speaker (never itself; `auto` without the random fallback, so chains end), each only if
 * the loop guards (TurnGuards) grant the turn; the first refusal of a chain posts one notice.
 */
@Injectable()
export class PersonaTurns {
  private readonly logger = new Logger('PersonaTurns');
  private readonly defaults: GuardLimits;
  private readonly directorTimeoutMs: number;

  constructor(
    private readonly guards: TurnGuards,
    private readonly llm: LlmClient,
    private readonly personas: PersonaStore,
    private readonly store: MessageStore,
    private readonly usage: PersonaUsageService,
    config: ConfigService<Env, true>,
  ) {
    const get = <K extends keyof Env>(k: K) => config.get(k, { infer: true });
    this.defaults = {
      maxConsecutiveTurns: get('PERSONA_MAX_CONSECUTIVE_TURNS'),
      chainBudget: get('PERSONA_CHAIN_BUDGET'),
      chainBudgetWindowMs: get('PERSONA_CHAIN_BUDGET_WINDOW_MS'),
      cooldownMs: get('PERSONA_COOLDOWN_MS'),
    };
    this.directorTimeoutMs = get('LLM_TIMEOUT_MS');
  }

  /** The guards in force with these settings (a room's overrides, else the defaults). */
  limits(s: TurnSettings): GuardLimits {
    return {
      maxConsecutiveTurns: s.maxConsecutiveTurns ?? this.defaults.maxConsecutiveTurns,
      chainBudget: s.chainBudget ?? this.defaults.chainBudget,
      chainBudgetWindowMs: this.defaults.chainBudgetWindowMs,
      cooldownMs: s.cooldownMs ?? this.defaults.cooldownMs,
    };
  }

  /**
   * The personas that answer a person's message in a group room (mentioned ones may be
   * disabled: they stay silent). `admit` is asked once, before any cost, when a persona would
   * be called (the sender's `persona` rate limit); refused, nobody answers. With cross-talk, a
   * message that calls personas starts its own chain of persona turns (keyed by its id).
   */
  async forHuman(
    message: MessageDto,
    room: RoomPersonas,
    admit: () => Promise<boolean>,
  ): Promise<RoomPersonaSummary[]> {
    const s = room.turns ?? DEFAULT_TURN_SETTINGS;
    const chain = {
      id: message.id,
      userId: message.author!.id,
      username: message.author!.username ?? 'someone',
    };
    const speakers = await this.pickForHuman(message, room, s, admit, chain);
    if (s.crossTalk) {
      const ids = speakers.filter((p) => p.enabled).map((p) => p.id);
      await this.guards.human(message.roomId, message.id, ids, this.limits(s).cooldownMs);
    }
    return speakers;
  }

  /** A persona's reply was saved in the room: with cross-talk, its cooldown starts again. */
  async spoke(roomId: string, personaId: string, room: RoomPersonas): Promise<void> {
    const s = room.turns ?? DEFAULT_TURN_SETTINGS;
    if (s.crossTalk) await this.guards.spoke(roomId, personaId, this.limits(s).cooldownMs);
  }

  /**
   * The personas that persona `speakerId`'s saved reply calls (cross-talk only), each granted
   * by the loop guards. A refused turn is not taken; the chain's first refusal comes with the
   * notice the room is to get.
   */
  async forReply(
    reply: MessageDto,
    speakerId: string,
    room: RoomPersonas,
    chain: Chain,
  ): Promise<FollowUp> {
    const none: FollowUp = { speakers: [], notice: null };
    const s = room.turns ?? DEFAULT_TURN_SETTINGS;
    if (!s.crossTalk || room.kind !== 'group') return none;
    const others = room.personas.filter((p) => p.enabled && p.id !== speakerId);
    if (!others.length) return none;
    const mentioned = this.mentioned(reply, room).filter((p) => p.enabled && p.id !== speakerId);
    let called: RoomPersonaSummary[];
    if (mentioned.length) called = mentioned;
    else {
      switch (s.policy) {
        case 'mention':
          called = [];
          break;
        case 'round-robin':
          called = [
            nextAfter(
              room.personas.filter((p) => p.enabled),
              speakerId,
            )!,
          ];
          break;
        case 'auto':
          called = autoSpeakers(others, s.seed, reply.id, s.maxSpeakers, false);
          break;
        case 'director':
          called = await this.direct(reply, others, chain);
          break;
      }
    }
    const limits = this.limits(s);
    const result: FollowUp = { speakers: [], notice: null };
    for (const p of called) {
      const grant = await this.guards.persona(reply.roomId, chain.id, p.id, limits);
      if (grant.ok) result.speakers.push(p);
      else if (grant.notify) result.notice = this.tripped(grant.guard, p, limits);
    }
    return result;
  }

  /** A deleted room's turn state. */
  forgetRoom(roomId: string): void {
    this.guards.forgetRoom(roomId);
  }

  private async pickForHuman(
    message: MessageDto,
    room: RoomPersonas,
    s: TurnSettings,
    admit: () => Promise<boolean>,
    chain: Chain,
  ): Promise<RoomPersonaSummary[]> {
    const mentioned = this.mentioned(message, room);
    if (mentioned.some((p) => p.enabled)) return (await admit()) ? mentioned : [];
    if (s.policy === 'mention') return mentioned;
    const enabled = room.personas.filter((p) => p.enabled);
    if (!enabled.length || !(await admit())) return [];
    switch (s.policy) {
      case 'round-robin':
        return [roundRobinSpeaker(enabled, await this.guards.nextTurn(message.roomId))!];
      case 'auto':
        return autoSpeakers(enabled, s.seed, message.id, s.maxSpeakers, true);
      case 'director':
        return this.direct(message, enabled, chain);
    }
  }

  /** Personas of the room the message mentions, in order of first mention. */
  private mentioned(message: MessageDto, room: RoomPersonas): RoomPersonaSummary[] {
    return mentionedHandles(message.content ?? '')
      .map((h) => room.personas.find((p) => p.handle === h))
      .filter((p) => p !== undefined);
  }

  /**
   * The director: the model reads the candidates' handles, names and descriptions (their
   * style and the start of their system prompt: the model's eyes only, never shown) and the
   * latest messages, and names the next speaker or none. Any failure, an answer cut at its
   * token limit or an empty one: nobody. Asked only while the chain's person, the room and the
   * server have budget left (the persona budget does not apply), and its tokens count for them
   * under the persona id DIRECTOR_ID.
   */
  private async direct(
    upTo: MessageDto,
    candidates: RoomPersonaSummary[],
    chain: Chain,
  ): Promise<RoomPersonaSummary[]> {
    if (!this.llm.configured) return [];
    const ask = {
      roomId: upTo.roomId,
      userId: chain.userId,
      username: chain.username,
      persona: DIRECTOR_PERSONA,
    };
    try {
      const [full, room, history] = await Promise.all([
        this.personas.inRoom(upTo.roomId),
        this.personas.promptRoom(upTo.roomId),
        this.store.pageBefore(upTo.roomId, upTo.id + 1, DIRECTOR_HISTORY),
      ]);
      if (!room) return [];
      const described = candidates.map((c) => {
        const p = full.find((f) => f.id === c.id);
        const description = [p?.style.trim(), p?.systemPrompt.trim()].filter(Boolean).join(' ');
        return { handle: c.handle, displayName: c.displayName, description };
      });
      if (!(await this.usage.allows(ask))) return [];
      const messages = directorMessages(described, history.items, room.name);
      let answer: CompletionResult | null = null;
      try {
        answer = await this.llm.complete(
          {
            model: this.llm.defaultModel,
            messages,
            temperature: 0,
            maxTokens: DIRECTOR_MAX_TOKENS,
          },
          AbortSignal.timeout(this.directorTimeoutMs),
        );
      } finally {
        const tokens = replyTokens(answer?.usage ?? null, messages, answer?.text ?? '');
        await this.usage.spend(ask, 'director', '', tokens);
      }
      if (answer.finish === 'length' || !answer.text.trim()) return [];
      const handle = parseDirectorAnswer(
        answer.text,
        candidates.map((c) => c.handle),
      );
      return candidates.filter((c) => c.handle === handle);
    } catch (err) {
      this.logger.warn(`director in ${upTo.roomId} failed, nobody called: ${String(err)}`);
      return [];
    }
  }

  private tripped(guard: Guard, p: RoomPersonaSummary, l: GuardLimits): string {
    const who = `${p.displayName} (@${p.handle})`;
    switch (guard) {
      case 'turns':
        return `Personas paused after ${l.maxConsecutiveTurns} turns in a row without a person's message (loop guard); write something to go on.`;
      case 'cooldown':
        return `${who} was not called: it spoke less than ${seconds(l.cooldownMs)} ago (loop guard); personas paused until someone writes.`;
      case 'budget':
        return `Personas used this room's budget of ${l.chainBudget} replies to each other per ${seconds(l.chainBudgetWindowMs)} (loop guard); they answer people only until it renews.`;
      case 'unavailable':
        return `${who} was not called: the loop guards are unavailable.`;
    }
  }
}

function seconds(ms: number): string {
  if (ms >= 3600_000 && ms % 3600_000 === 0) return `${ms / 3600_000} h`;
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000} min`;
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}
