import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { AuthUser } from '../auth/auth-user';
import type { Env } from '../config/env';
import { DomainEvents } from '../events/domain-events';
import { AppError } from '../common/errors';
import { AccessPolicy, type MessageAction } from '../access/access.policy';
import {
  ChangesPageDto,
  ChangesQuery,
  HistoryPageDto,
  HistoryQuery,
  MessageDto,
  MessageEditPageDto,
  MessageEditsQuery,
  ReactionsDto,
  SearchPageDto,
  SearchQuery,
  SendMessageDto,
} from './dto/message.dto';
import { forViewer, MessageStore } from './message-store';
import { MessageWriter } from './message-writer';

export interface SendResult {
  message: MessageDto;
  /** false when the clientMsgId was seen before and the first message is returned. */
  created: boolean;
}

@Injectable()
export class MessagesService {
  private readonly maxLength: number;
  private readonly maxEdits: number;

  constructor(
    private readonly store: MessageStore,
    private readonly access: AccessPolicy,
    private readonly writer: MessageWriter,
    private readonly events: DomainEvents,
    config: ConfigService<Env, true>,
  ) {
    this.maxLength = config.get('MESSAGE_MAX_LENGTH', { infer: true });
    this.maxEdits = config.get('MESSAGE_MAX_EDITS', { infer: true });
  }

  /**
   * Idempotent send. The fast path is one statement (membership check + insert); the reasons
   * for "nothing inserted" are looked up only when it happens. Events go out after commit, and
   * only for a new row, so a retried send is never broadcast twice.
   */
  async send(user: AuthUser, roomId: string, dto: SendMessageDto): Promise<SendResult> {
    if (dto.content.length > this.maxLength) {
      throw AppError.invalid('Validation failed', {
        content: [`content must be at most ${this.maxLength} characters`],
      });
    }
    const message = await this.store.insertUserMessage({
      roomId,
      author: user,
      content: dto.content,
      clientMsgId: dto.clientMsgId,
      replyToId: dto.replyToId,
    });
    if (message) {
      this.writer.announce(message);
      return { message, created: true };
    }
    const existing = await this.store.findByClientMsgId(user.id, dto.clientMsgId);
    if (existing) {
      if (existing.roomId !== roomId)
        throw AppError.conflict('clientMsgId was already used in another room');
      return { message: forViewer(existing, user.id), created: false };
    }
    await this.access.room(user, roomId, 'write');
    throw AppError.invalid('Validation failed', {
      replyToId: ['replyToId is not a message of this room'],
    });
  }

  async history(user: AuthUser, roomId: string, q: HistoryQuery): Promise<HistoryPageDto> {
    const given = [q.before, q.after, q.around].filter((v) => v !== undefined).length;
    if (given > 1) throw AppError.invalid('Use at most one of before, after and around');
    await this.access.room(user, roomId, 'read');
    let page: Omit<HistoryPageDto, 'hasMore'>;
    let hasMore: boolean;
    if (q.after !== undefined) {
      const { items, more } = await this.store.pageAfter(roomId, q.after, q.limit);
      page = { items, hasMoreAfter: more, hasMoreBefore: items.length > 0 || q.after > 0 };
      hasMore = more;
    } else if (q.around !== undefined) {
      const half = Math.floor(q.limit / 2);
      const [older, newer] = await Promise.all([
        this.store.pageBefore(roomId, q.around, half),
        this.store.pageAfter(roomId, q.around, q.limit - half, true),
      ]);
      page = {
        items: [...older.items, ...newer.items],
        hasMoreBefore: older.more,
        hasMoreAfter: newer.more,
      };
      hasMore = older.more || newer.more;
    } else {
      const { items, more } = await this.store.pageBefore(roomId, q.before, q.limit);
      page = { items, hasMoreBefore: more, hasMoreAfter: q.before !== undefined };
      hasMore = more;
    }
    return { ...page, items: page.items.map((m) => forViewer(m, user.id)), hasMore };
  }

  async changes(user: AuthUser, roomId: string, q: ChangesQuery): Promise<ChangesPageDto> {
    await this.access.room(user, roomId, 'read');
    const { items, more } = await this.store.changes(roomId, q.since, q.limit);
    return {
      items: items.map((m) => forViewer(m, user.id)),
      hasMore: more,
      cursor: items.length ? items[items.length - 1].version : q.since,
    };
  }

  async search(user: AuthUser, roomId: string, q: SearchQuery): Promise<SearchPageDto> {
    await this.access.room(user, roomId, 'read');
    const { items, more } = await this.store.search(roomId, q.q, q.before, q.limit);
    return { items: items.map((m) => forViewer(m, user.id)), hasMore: more };
  }

  /**
   * Authors edit their own user messages, at most MESSAGE_MAX_EDITS times each; the previous
   * text goes to the edit history. A message deleted meanwhile is a 404, never an edit.
   */
  async edit(user: AuthUser, id: number, content: string): Promise<MessageDto> {
    if (content.length > this.maxLength) {
      throw AppError.invalid('Validation failed', {
        content: [`content must be at most ${this.maxLength} characters`],
      });
    }
    const message = await this.visible(user, id, 'edit');
    const updated = await this.store.edit(id, message.roomId, content, this.maxEdits);
    if (updated === 'gone') throw AppError.notFound('Message');
    if (updated === 'limit') {
      throw AppError.conflict(
        `Edit limit reached: a message can be edited at most ${this.maxEdits} times`,
      );
    }
    this.events.emit('message.updated', { message: updated });
    return forViewer(updated, user.id);
  }

  /** The author or an admin turns a message into a tombstone. */
  async remove(user: AuthUser, id: number): Promise<void> {
    const message = await this.visible(user, id, 'delete');
    const tombstone = await this.store.tombstone(id, message.roomId);
    if (!tombstone) throw AppError.notFound('Message');
    this.events.emit('message.deleted', { message: tombstone });
  }

  /** A page of the edit history (previous contents, oldest first). */
  async edits(user: AuthUser, id: number, q: MessageEditsQuery): Promise<MessageEditPageDto> {
    await this.visible(user, id, 'read');
    const rows = await this.store.edits(id, q.cursor, q.limit + 1);
    const items = rows.slice(0, q.limit);
    return {
      items: items.map(({ content, editedAt }) => ({ content, editedAt })),
      nextCursor: rows.length > q.limit ? items[items.length - 1].id : null,
    };
  }

  /** A reaction on a message deleted meanwhile is a 404, never a reaction on the tombstone. */
  async react(user: AuthUser, id: number, emoji: string, added: boolean): Promise<ReactionsDto> {
    const message = await this.visible(user, id, 'react');
    const result = await this.store.react(id, message.roomId, user.id, emoji, added);
    if (!result) throw AppError.notFound('Message');
    const now = result.message;
    if (result.changed) {
      this.events.emit('reaction.updated', {
        roomId: now.roomId,
        messageId: id,
        version: now.version,
        reactions: now.reactions,
        userId: user.id,
        emoji,
        added,
      });
    }
    return { messageId: id, version: now.version, reactions: forViewer(now, user.id).reactions };
  }

  /** A live (not deleted) message the user may act on (AccessPolicy); 404 when not there. */
  private async visible(user: AuthUser, id: number, action: MessageAction): Promise<MessageDto> {
    const message = await this.store.findById(id);
    if (!message || message.deletedAt) throw AppError.notFound('Message');
    await this.access.message(user, message, action);
    return message;
  }
}
