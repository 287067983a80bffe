import { Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { OnEvent } from '@nestjs/event-emitter';
import { randomUUID } from 'node:crypto';
import { AccessPolicy } from '../access/access.policy';
import type { AuthUser } from '../auth/auth-user';
import type { Env } from '../config/env';
import { DomainEventMap, DomainEvents } from '../events/domain-events';
import { AppError } from '../common/errors';
import { RateLimiter } from '../common/rate-limiter';
import { RateLimitPolicy } from '../limits/rate-limit.policy';
import type { FinishReason, MessageDto } from '../messages/dto/message.dto';
import { MessageStore } from '../messages/message-store';
import { MessageWriter } from '../messages/message-writer';
import { MetricsService } from '../metrics/metrics.service';
import type { RoomKind } from '../rooms/room.entity';
import { describeUpstreamError, isAbort, isUpstreamTimeout, LlmClient } from './llm-client';
import { mentionedHandles } from './mentions';
import { PersonaStore, RoomPersonas } from './persona.store';
import { buildChatMessages } from './prompt';
import { KeyedSerialQueue } from './reply-queue';

/**
 * How long the room → personas lookup made for every user message is cached. Changes made on
 * this instance clear it at once; another instance sees them within this time.
 */
const ROOM_CACHE_MS = 5000;

/** How long shutdown waits for replies in flight to be stopped and saved. */
const SHUTDOWN_GRACE_MS = 5000;

/** Why a reply was stopped from our side (the model did not finish it). */
type StopReason = 'cancelled' | 'idle-timeout' | 'total-timeout' | 'shutdown' | 'room-deleted';

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
  userId: string;
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
 * Per instance: the queue, the active replies and cancel live on the instance that received the
 * triggering message.
 */
@Injectable()
export class PersonaRepliesService implements OnModuleDestroy {
  private readonly logger = new Logger('Personas');
  private readonly queue: KeyedSerialQueue;
  private readonly active = new Map<string, ActiveReply>();
  private readonly roomCache = new Map<string, { expires: number; value: RoomPersonas | null }>();
  private closing = false;
  private readonly s: {
    idleTimeoutMs: number;
    maxReplyMs: number;
    contextChars: number;
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
    config: ConfigService<Env, true>,
  ) {
    const get = <K extends keyof Env>(k: K) => config.get(k, { infer: true });
    this.s = {
      idleTimeoutMs: get('LLM_TIMEOUT_MS'),
      maxReplyMs: get('PERSONA_MAX_REPLY_MS'),
      contextChars: get('PERSONA_CONTEXT_CHARS'),
      contextMessages: get('PERSONA_CONTEXT_MESSAGES'),
      flushMs: get('PERSONA_STREAM_FLUSH_MS'),
    };
    this.queue = new KeyedSerialQueue(get('PERSONA_QUEUE_MAX'), (err) =>
      this.logger.error(err instanceof Error ? err.stack : String(err)),
    );
  }

  /**
   * Only people's messages call personas: replies and notices never do, so personas cannot
   * answer each other in a loop. Runs after the sender got their ack; never throws.
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
    this.queue.drop((key) => key.startsWith(`${roomId}:`));
    for (const reply of this.active.values()) {
      if (reply.roomId === roomId) this.stop(reply, 'room-deleted');
    }
  }

  /** Called by PersonasService after a change to a room's personas. */
  forgetRoom(roomId: string): void {
    this.roomCache.delete(roomId);
  }

  /** Called by PersonasService after a persona changed (it may be in many rooms). */
  forgetAll(): void {
    this.roomCache.clear();
  }

  /**
   * Stops a streaming reply; the text so far is kept, marked `cancelled`. Allowed to the person
   * who triggered it and to admins (not in conversations, which are their owner's alone); the
   * admin role is read as it is now, never taken from the caller's handshake or token.
   */
  async cancel(user: AuthUser, streamId: string): Promise<void> {
    const reply = this.active.get(streamId);
    if (!reply) throw AppError.notFound('Streaming reply');
    const { roomId, roomKind, userId: requesterId } = reply;
    await this.access.cancelStream(user, { roomId, roomKind, requesterId });
    // The reply may have ended while the policy looked.
    if (!this.active.has(streamId)) throw AppError.notFound('Streaming reply');
    this.stop(reply, 'cancelled');
  }

  async onModuleDestroy(): Promise<void> {
    this.closing = true;
    this.queue.drop();
    for (const reply of this.active.values()) this.stop(reply, 'shutdown');
    await Promise.race([
      this.queue.idle(),
      new Promise((resolve) => setTimeout(resolve, SHUTDOWN_GRACE_MS).unref()),
    ]);
  }

  private async trigger(message: MessageDto): Promise<void> {
    const room = await this.roomPersonas(message.roomId);
    if (!room?.personas.length) return;
    const called =
      room.kind === 'conversation'
        ? room.personas
        : mentionedHandles(message.content ?? '')
            .map((h) => room.personas.find((p) => p.handle === h))
            .filter((p) => p !== undefined);
    // A disabled persona stays silent; in a conversation, where nothing else could answer, say so.
    for (const p of called.filter((p) => !p.enabled && room.kind === 'conversation')) {
      await this.notice(message.roomId, `${p.displayName} is disabled and cannot reply.`);
    }
    const enabled = called.filter((p) => p.enabled);
    if (!enabled.length) return;

    const user = message.author!;
    // The per-user policy's `persona` bucket (shared across instances with Redis).
    const hit = await this.rateLimits.hit('persona', user.id);
    if (!hit.allowed) {
      // One notice per window, not one per message: the notice must not become the flood.
      const notice = this.limiter.hit(`persona-trigger-notice:${user.id}`, 1, hit.retryAfterMs);
      if (notice.allowed) {
        const seconds = Math.ceil(hit.retryAfterMs / 1000);
        await this.notice(
          message.roomId,
          `${user.username} is calling personas too often; try again in ${seconds} s.`,
        );
      }
      return;
    }

    for (const p of enabled) {
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
      };
      if (!this.queue.push(`${message.roomId}:${p.id}`, () => this.generate(job))) {
        await this.notice(
          message.roomId,
          `${p.displayName} is busy with earlier questions; ask again in a moment.`,
        );
      }
    }
  }

  private async generate(job: ReplyJob): Promise<void> {
    if (this.closing) return;
    // Read fresh: the persona may have been changed, disabled or deleted while this job waited.
    const persona = await this.personas.findById(job.personaId);
    const room = await this.personas.promptRoom(job.roomId);
    if (!persona?.enabled || !room) return;
    const history = await this.store.pageBefore(
      job.roomId,
      job.trigger.id + 1,
      this.s.contextMessages,
    );
    const model = persona.model ?? this.llm.defaultModel;
    const messages = buildChatMessages(persona, room, history.items, this.s.contextChars);

    const reply: ActiveReply = {
      id: randomUUID(),
      roomId: job.roomId,
      roomKind: room.kind,
      personaId: persona.id,
      userId: job.userId,
      controller: new AbortController(),
      stop: null,
    };
    this.active.set(reply.id, reply);
    const base = { messageId: reply.id, roomId: job.roomId };
    const endTimer = this.metrics.personaLatency.startTimer();
    const ended = (finishReason: FinishReason, message: MessageDto | null) => {
      endTimer();
      this.metrics.personaGenerations.inc({ finish_reason: finishReason });
      this.events.emit('persona.stream.end', { ...base, finishReason, message });
    };
    this.events.emit('persona.stream.start', {
      ...base,
      personaId: persona.id,
      replyToId: job.trigger.id,
    });

    // Tokens are gathered and sent at most every flushMs: one event per token would cost a
    // broadcast per token to every member.
    let text = '';
    let pending = '';
    let seq = 0;
    let flushTimer: NodeJS.Timeout | null = null;
    const flush = () => {
      if (flushTimer) clearTimeout(flushTimer);
      flushTimer = null;
      if (!pending) return;
      this.events.emit('persona.stream.delta', { ...base, seq: seq++, delta: pending });
      pending = '';
    };
    // Idle: no chunk for LLM_TIMEOUT_MS (a hung server); total: PERSONA_MAX_REPLY_MS.
    let idleTimer = setTimeout(() => this.stop(reply, 'idle-timeout'), this.s.idleTimeoutMs);
    const totalTimer = setTimeout(() => this.stop(reply, 'total-timeout'), this.s.maxReplyMs);

    let finish: FinishReason;
    let failure: string | null = null;
    try {
      const modelFinish = await this.llm.stream(
        { model, messages, temperature: persona.temperature, maxTokens: persona.maxTokens },
        reply.controller.signal,
        {
          onChunk: () => {
            clearTimeout(idleTimer);
            idleTimer = setTimeout(() => this.stop(reply, 'idle-timeout'), this.s.idleTimeoutMs);
          },
          onText: (piece) => {
            text += piece;
            pending += piece;
            flushTimer ??= setTimeout(flush, this.s.flushMs);
          },
        },
      );
      if (reply.stop) [finish, failure] = this.stopped(reply.stop);
      else if (modelFinish) finish = modelFinish;
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
      this.active.delete(reply.id);
    }

    if (reply.stop === 'room-deleted') {
      ended(finish, null);
      return;
    }
    let message: MessageDto | null = null;
    if (text.trim()) {
      message = await this.writer
        .personaReply({
          roomId: job.roomId,
          content: text,
          personaId: persona.id,
          replyToId: job.trigger.id,
          finishReason: finish,
        })
        .catch((err: unknown) => {
          // The room went away between the last chunk and the insert.
          this.logger.warn(`@${persona.handle}: reply not saved: ${String(err)}`);
          return null;
        });
    }
    ended(finish, message);
    if (message) this.writer.announce(message);

    if (failure) {
      const what = message ? 'could not finish replying' : 'could not reply';
      await this.notice(job.roomId, `${persona.displayName} ${what}: ${failure}.`);
    } else if (!text.trim() && finish !== 'cancelled') {
      await this.notice(job.roomId, `${persona.displayName} returned an empty reply.`);
    }
  }

  /** The finish reason and the room notice (if any) for a reply we stopped ourselves. */
  private stopped(reason: StopReason): [FinishReason, string | null] {
    switch (reason) {
      case 'cancelled':
      case 'room-deleted':
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

  private async roomPersonas(roomId: string): Promise<RoomPersonas | null> {
    const cached = this.roomCache.get(roomId);
    if (cached && cached.expires > Date.now()) return cached.value;
    const value = await this.personas.roomPersonas(roomId);
    this.roomCache.set(roomId, { expires: Date.now() + ROOM_CACHE_MS, value });
    return value;
  }
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}
