import { Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { OnEvent } from '@nestjs/event-emitter';
import { randomUUID } from 'node:crypto';
import { AccessPolicy } from '../access/access.policy';
import type { AuthUser } from '../auth/auth-user';
import type { Env } from '../config/env';
import { DomainEventMap, DomainEvents } from '../events/domain-events';
import { AppError } from '../common/errors';
import { MentionsService } from '../messages/mentions.service';
import { RateLimiter } from '../common/rate-limiter';
import { RateLimitPolicy } from '../limits/rate-limit.policy';
import type { FinishReason, MessageDto } from '../messages/dto/message.dto';
import { MessageStore } from '../messages/message-store';
import { MessageWriter } from '../messages/message-writer';
import { MetricsService } from '../metrics/metrics.service';
import { RedisChannels } from '../redis/redis-channels';
import { SharedCache } from '../redis/shared-cache';
import { SlowModeService } from '../moderation/slow-mode.service';
import type { RoomKind } from '../rooms/room.entity';
import type { MessageUsage } from '../common/wire';
import {
  describeUpstreamError,
  estimateTokens,
  isAbort,
  isUpstreamTimeout,
  LlmClient,
  type TokenUsage,
} from './llm-client';
import { PersonaStreams, type StreamState } from './persona-streams';
import { PersonaUsageService, type Reservation, replyTokens, usageDay } from './persona-usage';
import { PersonaStore, RoomPersonas, type RoomPersonaSummary } from './persona.store';
import { PersonaMemory } from './persona-memory';
import { PersonaTurns } from './persona-turns.service';
import { KeyedSerialQueue } from './reply-queue';

/** Redis channel telling the other instances to drop a room's personas (or all rooms'). */
export const ROOM_PERSONAS_CHANNEL = 'parlor:room-personas';

/** How long shutdown waits for replies in flight to be stopped and saved. */
const SHUTDOWN_GRACE_MS = 5000;

/** Why a reply was stopped from our side (the model did not finish it). */
type StopReason =
  | 'cancelled'
  | 'idle-timeout'
  | 'total-timeout'
  | 'shutdown'
  | 'room-deleted'
  /** The persona was taken out of the room, disabled or deleted (on any instance). */
  | 'withdrawn'
  /** Another instance took this one for dead and ended the reply (it is not saved again). */
  | 'lost';

interface ActiveReply {
  id: string;
  roomId: string;
  roomKind: RoomKind;
  personaId: string;
  /** Who triggered it: they (and admins) may cancel it. */
  userId: string;
  controller: AbortController;
  stop: StopReason | null;
}

interface ReplyJob {
  roomId: string;
  personaId: string;
  trigger: MessageDto;
  /** The person whose message started it (a follow-up's too): billed, named in notices. */
  userId: string;
  username: string;
  /** The id of that person's message: the chain of persona turns it belongs to. */
  chainId: number;
}

/**
 * Persona replies: who is called by a message, the per-persona-per-room queue, generation
 * through the model server, streaming as domain events, cancel, and failures as room notices.
 *
 * Streaming protocol (the chat gateway forwards these events to `room:<roomId>`):
 * `persona.stream.start` → `persona.stream.delta`* (coalesced, at most one per
 * PERSONA_STREAM_FLUSH_MS, `seq` 0, 1, 2…) → `persona.stream.end` with the saved message →
 * `message.created` for that same message (clients that ignore streams still get it; clients
 * that show the stream replace it with `end.message` and de-duplicate by id).
 *
 * No placeholder row exists while a reply streams: the text is saved once, at the end, so history
 * and the changes cursor only ever hold finished replies, and a late joiner sees the finished
 * message. A reply cut short (cancel, timeout, upstream error) keeps the text produced so far,
 * marked with its `finishReason`; text is never invented, and an empty reply saves nothing.
 *
 * The queue and the generation live on the instance that received the triggering message; the
 * state of a reply in progress (text so far, next `seq`) lives in PersonaStreams, where every
 * instance reads it: room.join gives it as `streams`, so a client that opens the room mid-reply
 * shows the text so far and applies the deltas that follow (no gap, no duplicate). Cancel works
 * from any instance (a Redis channel reaches the generating one), and a reply whose instance
 * died is ended by another within 1.5 × PERSONA_STREAM_STALE_MS, saved as `interrupted`.
 *
 * A persona's typing-like state ('thinking' until the first token, 'writing' until the end) is
 * announced as `persona.typing`, sent to the room as the `typing` event.
 */
@Injectable()
export class PersonaRepliesService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('Personas');
  private readonly queue: KeyedSerialQueue;
  private readonly active = new Map<string, ActiveReply>();
  /**
   * Each active room's kind, personas and turn-taking, read for every person's message: held in
   * memory until a change drops it here and, through Redis, on every instance (attach, detach,
   * turn policy: the room; a persona's update or deletion: all rooms), and at the latest after
   * ROOM_SETTINGS_TTL_MS.
   */
  private readonly roomCache: SharedCache<RoomPersonas | null>;
  private closing = false;
  /** Aborted at shutdown: ends waits for a slow-mode slot. */
  private readonly shutdown = new AbortController();
  private readonly s: {
    idleTimeoutMs: number;
    maxReplyMs: number;
    contextMessages: number;
    flushMs: number;
  };

  constructor(
    private readonly personas: PersonaStore,
    private readonly store: MessageStore,
    private readonly writer: MessageWriter,
    private readonly events: DomainEvents,
    private readonly limiter: RateLimiter,
    private readonly rateLimits: RateLimitPolicy,
    private readonly llm: LlmClient,
    private readonly access: AccessPolicy,
    private readonly metrics: MetricsService,
    private readonly slowMode: SlowModeService,
    private readonly streams: PersonaStreams,
    private readonly memory: PersonaMemory,
    private readonly usage: PersonaUsageService,
    private readonly turns: PersonaTurns,
    private readonly mentions: MentionsService,
    channels: RedisChannels,
    config: ConfigService<Env, true>,
  ) {
    const get = <K extends keyof Env>(k: K) => config.get(k, { infer: true });
    this.roomCache = new SharedCache({
      channel: ROOM_PERSONAS_CHANNEL,
      ttlMs: get('ROOM_SETTINGS_TTL_MS'),
      maxKeys: get('ROOM_SETTINGS_CACHE_ROOMS'),
      channels,
      load: (roomId) => this.personas.roomPersonas(roomId),
      // A change here or on another instance (detach, disable, deletion of the persona or of
      // the room): the replies it concerns stop.
      onDropped: (roomId) => this.recheck(roomId),
    });
    this.s = {
      idleTimeoutMs: get('LLM_TIMEOUT_MS'),
      maxReplyMs: get('PERSONA_MAX_REPLY_MS'),
      contextMessages: get('PERSONA_CONTEXT_MESSAGES'),
      flushMs: get('PERSONA_STREAM_FLUSH_MS'),
    };
    this.queue = new KeyedSerialQueue(get('PERSONA_QUEUE_MAX'), (err) =>
      this.logger.error(err instanceof Error ? err.stack : String(err)),
    );
  }

  onModuleInit(): void {
    this.roomCache.start();
    const stop = (reason: StopReason) => (id: string) => {
      const reply = this.active.get(id);
      if (reply) this.stop(reply, reason);
    };
    this.streams.onCancel = stop('cancelled');
    this.streams.onLost = stop('lost');
    this.streams.onStale = (state) => this.endInterrupted(state);
  }

  /**
   * People's messages call personas (notices never do); a persona's reply may call others only
   * through `followUp`, under the loop guards. Runs after the sender got their ack; never throws.
   */
  @OnEvent('message.created')
  onMessageCreated({ message }: DomainEventMap['message.created']): void {
    if (message.role !== 'user' || message.author?.kind !== 'user' || this.closing) return;
    void this.trigger(message).catch((err: unknown) =>
      this.logger.error(err instanceof Error ? err.stack : String(err)),
    );
  }

  /** A deleted room (or conversation) takes its waiting and streaming replies with it. */
  @OnEvent('room.deleted')
  onRoomDeleted({ roomId }: DomainEventMap['room.deleted']): void {
    this.forgetRoom(roomId);
    this.turns.forgetRoom(roomId);
    this.queue.drop((key) => key.startsWith(`${roomId}:`));
    for (const reply of this.active.values()) {
      if (reply.roomId === roomId) this.stop(reply, 'room-deleted');
    }
  }

  /**
   * The room's (null: every room's) personas changed, here or on another instance: each reply
   * in progress there (or about to start) is asked again whether it may go on, from the state
   * read now, and stopped if not. This is how a room deleted through another instance stops
   * the replies generated here (its deletion drops the room's entry everywhere).
   */
  private recheck(roomId: string | null): void {
    for (const reply of this.active.values()) {
      if (roomId !== null && reply.roomId !== roomId) continue;
      void this.standing(reply.roomId, reply.personaId).then(
        (why) => why && this.stop(reply, why),
        (err: unknown) => this.logger.warn(`reply ${reply.id} not re-checked: ${String(err)}`),
      );
    }
  }

  /**
   * Whether a persona may reply in a room now (through the room-personas cache, which every
   * change drops on every instance): null when it may, else why not.
   */
  private async standing(
    roomId: string,
    personaId: string,
  ): Promise<'room-deleted' | 'withdrawn' | null> {
    const room = await this.roomCache.get(roomId);
    if (!room) return 'room-deleted';
    return room.personas.some((p) => p.id === personaId && p.enabled) ? null : 'withdrawn';
  }

  /** Called by PersonasService after a change to a room's personas (on every instance). */
  forgetRoom(roomId: string): void {
    this.roomCache.changed(roomId);
  }

  /** Called by PersonasService after a persona changed (it may be in many rooms). */
  forgetAll(): void {
    this.roomCache.changed(null);
  }

  /**
   * Stops a streaming reply; the text so far is kept, marked `cancelled`. Allowed to the person
   * who triggered it and to admins (not in conversations, which are their owner's alone); the
   * admin role is read as it is now, never taken from the caller's handshake or token.
   */
  async cancel(user: AuthUser, streamId: string): Promise<void> {
    // Generated here, or on another instance (its record is shared through Redis).
    const reply = this.active.get(streamId) ?? (await this.streams.get(streamId));
    if (!reply) throw AppError.notFound('Streaming reply');
    const { roomId, roomKind, userId: requesterId } = reply;
    await this.access.cancelStream(user, { roomId, roomKind, requesterId });
    const local = this.active.get(streamId);
    if (local) return this.stop(local, 'cancelled');
    // The reply may have ended while the policy looked.
    if (!(await this.streams.get(streamId))) throw AppError.notFound('Streaming reply');
    await this.streams.requestCancel(streamId);
  }

  async onModuleDestroy(): Promise<void> {
    this.closing = true;
    this.roomCache.stop();
    this.shutdown.abort();
    this.queue.drop();
    for (const reply of this.active.values()) this.stop(reply, 'shutdown');
    await Promise.race([
      this.queue.idle(),
      new Promise((resolve) => setTimeout(resolve, SHUTDOWN_GRACE_MS).unref()),
    ]);
  }

  private async trigger(message: MessageDto): Promise<void> {
    const room = await this.roomCache.get(message.roomId);
    if (!room?.personas.length) return;
    const user = message.author!;
    const admit = () => this.admit(message.roomId, user);
    let called: RoomPersonaSummary[];
    if (room.kind === 'conversation') {
      // A disabled persona stays silent; in a conversation, where nothing else could answer, say so.
      for (const p of room.personas.filter((p) => !p.enabled)) {
        await this.notice(message.roomId, `${p.displayName} is disabled and cannot reply.`);
      }
      called = room.personas.filter((p) => p.enabled);
      if (!called.length || !(await admit())) return;
    } else {
      // Group rooms: the room's turn-taking policy (mentions by default).
      called = (await this.turns.forHuman(message, room, admit)).filter((p) => p.enabled);
    }
    for (const p of called) {
      if (!this.llm.configured) {
        await this.notice(
          message.roomId,
          `${p.displayName} cannot reply: persona replies are not configured on this server (LLM_BASE_URL is not set).`,
        );
        continue;
      }
      const job: ReplyJob = {
        roomId: message.roomId,
        personaId: p.id,
        trigger: message,
        userId: user.id,
        username: user.username ?? 'someone',
        chainId: message.id,
      };
      await this.enqueue(job, p);
    }
  }

  private requesterMayWrite(job: ReplyJob): Promise<boolean> {
    return this.access.may({ id: job.userId }, job.roomId, 'write');
  }

  /** The per-user policy's `persona` bucket (shared across instances with Redis). */
  private async admit(roomId: string, user: { id: string; username?: string }): Promise<boolean> {
    const hit = await this.rateLimits.hit('persona', user.id);
    if (hit.allowed) return true;
    // One notice per window, not one per message: the notice must not become the flood.
    const notice = this.limiter.hit(`persona-trigger-notice:${user.id}`, 1, hit.retryAfterMs);
    if (notice.allowed) {
      const seconds = Math.ceil(hit.retryAfterMs / 1000);
      await this.notice(
        roomId,
        `${user.username} is calling personas too often; try again in ${seconds} s.`,
      );
    }
    return false;
  }

  private async enqueue(job: ReplyJob, p: { displayName: string }): Promise<void> {
    if (!this.queue.push(`${job.roomId}:${job.personaId}`, () => this.generate(job))) {
      await this.notice(
        job.roomId,
        `${p.displayName} is busy with earlier questions; ask again in a moment.`,
      );
    }
  }

  /**
   * A persona's saved reply in a group room: its cooldown starts again (it just spoke), and a
   * finished one may call other personas (cross-talk, under the loop guards:
   * PersonaTurns.forReply). Their replies answer it, on behalf of the same person, in the same
   * chain.
   */
  private async afterSaved(job: ReplyJob, reply: MessageDto, finish: FinishReason): Promise<void> {
    const room = await this.roomCache.get(job.roomId);
    if (!room) return;
    await this.turns.spoke(job.roomId, job.personaId, room);
    if (this.closing || (finish !== 'stop' && finish !== 'length')) return;
    const chain = { id: job.chainId, userId: job.userId, username: job.username };
    const next = await this.turns.forReply(reply, job.personaId, room, chain);
    for (const p of next.speakers) {
      await this.enqueue({ ...job, personaId: p.id, trigger: reply }, p);
    }
    if (next.notice) await this.notice(job.roomId, next.notice);
  }

  private async generate(job: ReplyJob): Promise<void> {
    if (this.closing) return;
    // A reply speaks for the person who asked: they may have been muted, banned or removed, or
    // the room archived, while this job waited or the chain went on. Asked now, not remembered.
    if (!(await this.requesterMayWrite(job))) return;
    if (!(await this.slowModeSlot(job))) return;
    // Read fresh: the persona may have been changed, disabled or deleted while this job waited.
    const persona = await this.personas.findById(job.personaId);
    const room = await this.personas.promptRoom(job.roomId);
    if (!persona?.enabled || !room) return;
    // Still in the room (an admin may have taken it out while this job waited).
    if (await this.standing(job.roomId, job.personaId)) return;
    const ask = { roomId: job.roomId, userId: job.userId, username: job.username, persona };
    // Today's token budgets, before any request (the summary's too): a refused reply never
    // reaches the model server (the room is told).
    if (!(await this.usage.allows(ask))) return;
    const history = await this.store.pageBefore(
      job.roomId,
      job.trigger.id + 1,
      this.s.contextMessages,
    );
    const model = persona.model ?? this.llm.defaultModel;
    // The recent messages that fit, after the summary of older ones (made here when needed;
    // its tokens count for this reply's user, room and persona: reserved before it is asked,
    // as a reply is, and settled before the reply reserves its own).
    let summarised = false;
    let summary: Reservation | null = null;
    const messages = await this.memory.prompt(persona, room, job.roomId, history, {
      reserve: async (prompt, maxTokens) => {
        summary = await this.usage.reserve({ ...ask, prompt, maxTokens }, { generation: false });
        return summary !== null;
      },
      settle: (t) => {
        summarised = true;
        return this.usage.settleRequest(summary!, 'summary', persona.handle, t);
      },
    });
    if (this.closing) return;
    // A summary takes a while and cannot be cancelled: the room may have gone meanwhile.
    if (summarised && !(await this.personas.promptRoom(job.roomId))) return;
    // Asked again: slow mode and the summary may have kept this job waiting for minutes.
    if (!(await this.requesterMayWrite(job))) return;
    const reply: ActiveReply = {
      id: randomUUID(),
      roomId: job.roomId,
      roomKind: room.kind,
      personaId: persona.id,
      userId: job.userId,
      controller: new AbortController(),
      stop: null,
    };
    // Active from here: a change of the room's personas from now on stops it (recheck); one
    // made before is seen by this read (the cache was dropped first).
    this.active.set(reply.id, reply);
    if (await this.standing(job.roomId, job.personaId)) {
      this.active.delete(reply.id);
      return;
    }
    // Counted from here on; refused when a budget ran out meanwhile (the room is told).
    const reservation = await this.usage.reserve({
      ...ask,
      prompt: messages,
      maxTokens: persona.maxTokens,
    });
    if (!reservation || reply.stop || this.closing) {
      // Stopped before its request was sent (detached, room deleted, shutdown): nothing spent.
      this.active.delete(reply.id);
      if (reservation) await this.usage.release(reservation);
      return;
    }
    const base = { messageId: reply.id, roomId: job.roomId };
    const startedAt = Date.now();
    let firstTokenAt: number | null = null;
    let usage: TokenUsage | null = null;
    // Shared before anyone hears of it: a client that joins from now on finds it in room.join.
    const shared = await this.streams.open({
      ...base,
      roomKind: room.kind,
      personaId: persona.id,
      personaHandle: persona.handle,
      replyToId: job.trigger.id,
      userId: job.userId,
      startedAt,
      promptTokens: reservation.promptTokens,
      reservedTokens: reservation.completionTokens,
    });
    const ended = (finishReason: FinishReason, message: MessageDto | null, t: MessageUsage) => {
      this.record(persona.handle, finishReason, startedAt, firstTokenAt, t);
      this.events.emit('persona.stream.end', { ...base, finishReason, message });
      this.typing(job.roomId, persona, null);
    };
    this.events.emit('persona.stream.start', {
      ...base,
      personaId: persona.id,
      replyToId: job.trigger.id,
    });
    this.typing(job.roomId, persona, 'thinking');

    // Tokens are gathered and sent at most every flushMs: one event per token would cost a
    // broadcast per token to every member. Each delta is written to the shared state before it
    // is emitted (in order, one at a time), so a reader of the state misses none.
    let text = '';
    let pending = '';
    let seq = 0;
    let flushTimer: NodeJS.Timeout | null = null;
    let written: Promise<void> = Promise.resolve();
    const flush = () => {
      if (flushTimer) clearTimeout(flushTimer);
      flushTimer = null;
      if (!pending) return;
      const delta = { ...base, seq: seq++, delta: pending };
      pending = '';
      written = written
        .then(async () => {
          if (shared && !(await this.streams.append(reply.id, delta.delta, delta.seq))) {
            this.stop(reply, 'lost');
          }
          if (reply.stop !== 'lost') this.events.emit('persona.stream.delta', delta);
        })
        .catch((err: unknown) => this.logger.error(err instanceof Error ? err.stack : String(err)));
    };
    // Idle: no chunk for LLM_TIMEOUT_MS (a hung server); total: PERSONA_MAX_REPLY_MS.
    let idleTimer = setTimeout(() => this.stop(reply, 'idle-timeout'), this.s.idleTimeoutMs);
    const totalTimer = setTimeout(() => this.stop(reply, 'total-timeout'), this.s.maxReplyMs);

    let finish: FinishReason;
    let failure: string | null = null;
    try {
      const result = await this.llm.stream(
        {
          model,
          messages,
          temperature: persona.temperature,
          maxTokens: persona.maxTokens,
          stop: persona.stop,
        },
        reply.controller.signal,
        {
          onChunk: () => {
            clearTimeout(idleTimer);
            idleTimer = setTimeout(() => this.stop(reply, 'idle-timeout'), this.s.idleTimeoutMs);
          },
          onText: (piece) => {
            if (firstTokenAt === null) {
              firstTokenAt = Date.now();
              this.typing(job.roomId, persona, 'writing');
            }
            text += piece;
            pending += piece;
            flushTimer ??= setTimeout(flush, this.s.flushMs);
          },
        },
      );
      usage = result.usage;
      if (reply.stop) [finish, failure] = this.stopped(reply.stop);
      else if (result.finish) finish = result.finish;
      else [finish, failure] = ['error', 'the reply stream ended before the model finished'];
    } catch (err) {
      if (reply.stop && isAbort(err)) {
        [finish, failure] = this.stopped(reply.stop);
      } else {
        this.logger.warn(`@${persona.handle} in ${job.roomId}: ${String(err)}`);
        finish = isUpstreamTimeout(err) ? 'timeout' : 'error';
        failure = describeUpstreamError(err, model);
      }
    } finally {
      clearTimeout(idleTimer);
      clearTimeout(totalTimer);
      flush();
    }
    await written;
    this.active.delete(reply.id);
    // Claimed before it is saved: an instance that took this one for dead may have ended it.
    const claimed = await this.streams.close(reply.id, job.roomId);
    if (!claimed || reply.stop === 'lost') {
      this.logger.warn(`@${persona.handle} in ${job.roomId}: reply ended by another instance`);
      return;
    }
    // Cut short or empty, a reply still cost tokens: counted whatever is saved.
    const tokens = replyTokens(usage, messages, text);
    await this.usage.settle(reservation, tokens);

    if (reply.stop === 'room-deleted') {
      ended(finish, null, tokens);
      return;
    }
    let message: MessageDto | null = null;
    if (text.trim()) {
      message = await this.save(job.roomId, persona.id, job.trigger.id, text, finish, tokens);
    }
    ended(finish, message, tokens);
    if (message) this.writer.announce(message);
    if (message && room.kind === 'group') {
      void this.afterSaved(job, message, finish).catch((err: unknown) =>
        this.logger.error(err instanceof Error ? err.stack : String(err)),
      );
    }

    if (text.trim() && !message) {
      // Written, but not stored (logged by save): people must not wait for it in silence.
      await this.notice(
        job.roomId,
        `${persona.displayName} could not reply: the reply could not be saved.`,
      );
    } else if (failure) {
      const what = message ? 'could not finish replying' : 'could not reply';
      await this.notice(job.roomId, `${persona.displayName} ${what}: ${failure}.`);
    } else if (!text.trim() && finish !== 'cancelled') {
      await this.notice(job.roomId, `${persona.displayName} returned an empty reply.`);
    }
  }

  /**
   * A reply whose instance died (PersonaStreams found its heartbeat expired and claimed it): the
   * text it had is saved as `interrupted`, the stream ends, and the room is told.
   */
  private async endInterrupted(state: StreamState): Promise<void> {
    const { messageId, roomId, personaId, personaHandle } = state;
    const persona = await this.personas.findById(personaId);
    // The prompt was counted (estimated) when the reply started; its text is estimated now.
    const tokens = {
      promptTokens: state.promptTokens ?? 0,
      completionTokens: estimateTokens(state.text),
      estimated: true,
    };
    const day = usageDay(state.startedAt);
    const reserved = {
      promptTokens: tokens.promptTokens,
      completionTokens: state.reservedTokens ?? 0,
    };
    await this.usage.settle({ ...state, day, ...reserved }, tokens);
    let message: MessageDto | null = null;
    if (state.text.trim()) {
      message = await this.save(
        roomId,
        personaId,
        state.replyToId,
        state.text,
        'interrupted',
        tokens,
      );
    }
    this.record(personaHandle, 'interrupted', state.startedAt, null, tokens);
    this.events.emit('persona.stream.end', {
      messageId,
      roomId,
      finishReason: 'interrupted',
      message,
    });
    this.typing(roomId, { id: personaId, handle: personaHandle }, null);
    if (message) this.writer.announce(message);
    const name = persona?.displayName ?? `@${personaHandle}`;
    await this.notice(
      roomId,
      `${name} could not finish replying: the server writing the reply stopped.`,
    );
  }

  /** Saves a reply's text; null when the room went away (or was archived) meanwhile. */
  private save(
    roomId: string,
    personaId: string,
    replyToId: number | null,
    content: string,
    finishReason: FinishReason,
    usage: MessageUsage,
  ): Promise<MessageDto | null> {
    const replyTo = replyToId ?? undefined;
    return this.mentions
      .resolveForPersona(roomId, content)
      .then((mentions) =>
        this.writer.personaReply({
          roomId,
          content,
          personaId,
          replyToId: replyTo,
          finishReason,
          usage,
          mentions,
        }),
      )
      .catch((err: unknown) => {
        this.logger.warn(`reply of ${personaId} in ${roomId} not saved: ${String(err)}`);
        return null;
      });
  }

  /**
   * Metrics of one finished generation, by persona handle and outcome (the finish reason).
   * Tokens are the model's `usage` when it sent one, else estimated (see `replyTokens`).
   */
  private record(
    persona: string,
    outcome: FinishReason,
    startedAt: number,
    firstTokenAt: number | null,
    t: MessageUsage,
  ): void {
    const labels = { persona, outcome };
    const m = this.metrics;
    m.personaGenerations.inc(labels);
    m.personaLatency.observe(labels, (Date.now() - startedAt) / 1000);
    if (firstTokenAt !== null)
      m.personaFirstToken.observe(labels, (firstTokenAt - startedAt) / 1000);
    this.usage.countTokens(persona, outcome, t);
  }

  /** The persona's typing-like state in the room (null: off). */
  private typing(
    roomId: string,
    persona: { id: string; handle: string },
    state: 'thinking' | 'writing' | null,
  ): void {
    this.events.emit('persona.typing', {
      roomId,
      userId: persona.id,
      username: persona.handle,
      typing: state !== null,
      persona: true,
      ...(state ? { state } : {}),
    });
  }

  /**
   * Slow mode counts persona replies like any member's messages: a reply waits (in its queue)
   * for the persona's slot in the room. One that would wait longer than PERSONA_MAX_REPLY_MS
   * is dropped with a notice.
   */
  private async slowModeSlot(job: ReplyJob): Promise<boolean> {
    const actor = `p:${job.personaId}`;
    const { maxReplyMs } = this.s;
    if (await this.slowMode.waitForSlot(job.roomId, actor, maxReplyMs, this.shutdown.signal))
      return true;
    const persona = this.closing ? null : await this.personas.findById(job.personaId);
    if (persona)
      await this.notice(
        job.roomId,
        `${persona.displayName} will not reply: slow mode would hold the reply longer than ${seconds(maxReplyMs)}.`,
      );
    return false;
  }

  /** The finish reason and the room notice (if any) for a reply we stopped ourselves. */
  private stopped(reason: StopReason): [FinishReason, string | null] {
    switch (reason) {
      case 'cancelled':
      case 'room-deleted':
      case 'withdrawn':
        return ['cancelled', null];
      case 'idle-timeout':
        return [
          'timeout',
          `the model server sent nothing for ${seconds(this.s.idleTimeoutMs)} (LLM_TIMEOUT_MS)`,
        ];
      case 'total-timeout':
        return [
          'timeout',
          `the reply took longer than ${seconds(this.s.maxReplyMs)} (PERSONA_MAX_REPLY_MS)`,
        ];
      case 'shutdown':
        return ['error', 'the server is shutting down'];
      case 'lost':
        return ['interrupted', null];
    }
  }

  private stop(reply: ActiveReply, reason: StopReason): void {
    if (reply.stop) return;
    reply.stop = reason;
    reply.controller.abort();
  }

  /** A system message in the room; a room deleted meanwhile is not an error. */
  private async notice(roomId: string, content: string): Promise<void> {
    try {
      await this.writer.notice(roomId, content);
    } catch (err) {
      this.logger.warn(`notice not saved in ${roomId}: ${String(err)}`);
    }
  }
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}
