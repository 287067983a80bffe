import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { retryOnConflict } from '../common/pg-errors';
import { DomainEvents } from '../events/domain-events';
import type { MessageUsage } from '../common/wire';
import type { FinishReason, MessageDto } from './dto/message.dto';
import { type MessageMentions, MessageStore } from './message-store';

/** A transaction that may post system messages; they are announced once it has committed. */
export interface NoticeTx {
  em: EntityManager;
  /** Writes a system message in this transaction. */
  notice: (roomId: string, text: string) => Promise<MessageDto>;
  /**
   * Takes the room's lock (the one every message write takes) until the commit. A membership
   * removal takes it before it deletes the row: the send statement holds the room's lock, then
   * locks the sender's membership row, so the other order would deadlock with it.
   */
  lockRoom: (roomId: string) => Promise<void>;
  /**
   * Runs `fn` after the commit, before the notices are announced: a membership change's own
   * event (which subscribes or unsubscribes sockets) goes first, as clients expect.
   */
  afterCommit: (fn: () => void) => void;
}

/**
 * The one way a message reaches the room: system notices and persona replies are written here,
 * and `message.created` is emitted here alone, after commit (the send path hands its committed
 * messages to `announce`). Services never emit `message.created` themselves.
 */
@Injectable()
export class MessageWriter {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly store: MessageStore,
    private readonly events: DomainEvents,
  ) {}

  /**
   * Runs `work` in one transaction; notices it posts are announced after the commit. A deadlock
   * victim (say, a ban's notice meeting the room's deletion) runs again (`retryOnConflict`).
   */
  async transaction<T>(work: (tx: NoticeTx) => Promise<T>): Promise<T> {
    let posted: MessageDto[] = [];
    let first: (() => void)[] = [];
    const result = await retryOnConflict(() => {
      const [notices, commits]: [MessageDto[], (() => void)[]] = [[], []];
      [posted, first] = [notices, commits];
      return this.db.transaction((em) =>
        work({
          em,
          notice: async (roomId, text) => {
            const m = await this.store.insert({ roomId, role: 'system', content: text }, em);
            notices.push(m);
            return m;
          },
          lockRoom: (roomId) => this.store.lockRoom(em, roomId),
          afterCommit: (fn) => commits.push(fn),
        }),
      );
    });
    for (const fn of first) fn();
    for (const message of posted) this.announce(message);
    return result;
  }

  /** A system notice on its own. */
  async notice(roomId: string, text: string): Promise<MessageDto> {
    return this.transaction((tx) => tx.notice(roomId, text));
  }

  /**
   * A persona's reply, kept with how its generation ended. Not announced here: the caller ends
   * the stream first (persona.stream.end), then announces, so clients see them in that order.
   */
  async personaReply(m: {
    roomId: string;
    personaId: string;
    content: string;
    replyToId?: number;
    finishReason: FinishReason;
    /** The tokens its generation cost (docs/personas.md "Usage and budgets"). */
    usage?: MessageUsage;
    /** The members it mentions by name (they are notified). */
    mentions?: MessageMentions;
  }): Promise<MessageDto> {
    return this.store.insert({ ...m, role: 'assistant' });
  }

  /**
   * The one emit of `message.created` (the send path calls it for rows its batch committed),
   * and of `thread.updated`: after the first reply of a committed batch to a root is announced,
   * the root's counters as that batch left them, once per batch and root.
   */
  announce(message: MessageDto): void {
    this.events.emit('message.created', { message });
    const thread = this.store.threadCountersOf(message);
    if (!thread || thread.announced) return;
    thread.announced = true;
    const { announced: _flag, ...counters } = thread;
    this.events.emit('thread.updated', counters);
  }
}
