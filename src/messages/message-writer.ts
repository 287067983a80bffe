import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { DomainEvents } from '../events/domain-events';
import type { FinishReason, MessageDto } from './dto/message.dto';
import { MessageStore } from './message-store';

/** A transaction that may post system messages; they are announced once it has committed. */
export interface NoticeTx {
  em: EntityManager;
  /** Writes a system message in this transaction. */
  notice: (roomId: string, text: string) => Promise<MessageDto>;
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

  /** Runs `work` in one transaction; notices it posts are announced after the commit. */
  async transaction<T>(work: (tx: NoticeTx) => Promise<T>): Promise<T> {
    const posted: MessageDto[] = [];
    const first: (() => void)[] = [];
    const result = await this.db.transaction((em) =>
      work({
        em,
        notice: async (roomId, text) => {
          const m = await this.store.insert({ roomId, role: 'system', content: text }, em);
          posted.push(m);
          return m;
        },
        afterCommit: (fn) => first.push(fn),
      }),
    );
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
    replyToId: number;
    finishReason: FinishReason;
  }): Promise<MessageDto> {
    return this.store.insert({ ...m, role: 'assistant' });
  }

  /** The one emit of `message.created` (the send path calls it for rows its batch committed). */
  announce(message: MessageDto): void {
    this.events.emit('message.created', { message });
  }
}
