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
  ThreadFollowDto,
  ThreadPageDto,
  ThreadQuery,
} from './dto/message.dto';
import type { EntityManager } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import {
  forViewer,
  hidesReasonFrom,
  isAuthor,
  MessageStore,
  type NewUserMessage,
} from './message-store';
import { AttachmentStore } from '../attachments/attachment.store';
import { MessageWriter } from './message-writer';
import { MentionsService } from './mentions.service';
import { RoomSettingsCache } from '../moderation/room-settings.cache';
import { SlowModeService } from '../moderation/slow-mode.service';
import { screenContent } from '../moderation/word-filter';

export interface SendResult {
  message: MessageDto;
  /** false when the clientMsgId was seen before and the first message is returned. */
  created: boolean;
}

@Injectable()
export class MessagesService {
  private readonly maxLength: number;
  private readonly maxEdits: number;
  private readonly maxReactions: number;
  private readonly perMessage: number;

  constructor(
    private readonly store: MessageStore,
    private readonly access: AccessPolicy,
    private readonly writer: MessageWriter,
    private readonly events: DomainEvents,
    private readonly audit: AuditService,
    private readonly roomSettings: RoomSettingsCache,
    private readonly slowMode: SlowModeService,
    private readonly mentions: MentionsService,
    private readonly attachments: AttachmentStore,
    config: ConfigService<Env, true>,
  ) {
    this.perMessage = config.get('ATTACHMENTS_PER_MESSAGE', { infer: true });
    this.maxLength = config.get('MESSAGE_MAX_LENGTH', { infer: true });
    this.maxEdits = config.get('MESSAGE_MAX_EDITS', { infer: true });
    this.maxReactions = config.get('MESSAGE_MAX_REACTIONS', { infer: true });
  }

  /**
   * Idempotent send. The fast path is one statement (membership check + insert); the reasons
   * for "nothing inserted" are looked up only when it happens. Events go out after commit, and
   * only for a new row, so a retried send is never broadcast twice.
   *
   * Before the insert, the room's moderation settings, from memory (RoomSettingsCache): the
   * word filter (CONTENT_BLOCKED, or the text masked) and the slow-mode slot, released again
   * when nothing new was stored. A refused slot first looks for a retry of a stored message,
   * then asks whether the user is exempt (moderators).
   *
   * Mentions are resolved from the text as stored (MentionsService: from memory; a text
   * without `@` costs nothing) and written by the same statement, with a reply's thread
   * counters.
   */
  async send(user: AuthUser, roomId: string, dto: SendMessageDto): Promise<SendResult> {
    if (dto.content.length > this.maxLength) {
      throw AppError.invalid('Validation failed', {
        content: [`content must be at most ${this.maxLength} characters`],
      });
    }
    const held = this.roomSettings.get(roomId);
    const settings = held instanceof Promise ? await held : held;
    let content: string;
    try {
      content = screenContent(settings.filter, dto.content);
    } catch (blocked) {
      // A retry of a message stored before the rule that now blocks it gets its first answer.
      const retry = await this.retried(user, roomId, dto.clientMsgId);
      if (retry) return retry;
      // Only those who may write learn the room's rules (or that a private room exists).
      await this.access.room(user, roomId, 'write');
      throw blocked;
    }
    const claimed = this.slowMode.claim(roomId, `u:${user.id}`, settings.slowModeMs);
    const slot = claimed instanceof Promise ? await claimed : claimed;
    if (!slot.ok) {
      const retry = await this.retried(user, roomId, dto.clientMsgId);
      if (retry) return retry;
      await this.slowMode.exemptOrRefuse(user, roomId, slot);
    }
    let message: MessageDto | null = null;
    try {
      const resolved = this.mentions.resolve(user, roomId, content);
      const m = {
        roomId,
        author: user,
        content,
        clientMsgId: dto.clientMsgId,
        replyToId: dto.replyToId,
        mentions: resolved instanceof Promise ? await resolved : resolved,
      };
      message = dto.attachmentIds?.length
        ? await this.sendWithAttachments(m, dto.attachmentIds)
        : await this.store.insertUserMessage(m);
    } finally {
      if (!message && slot.ok) slot.release();
    }
    if (message) {
      this.writer.announce(message);
      return { message, created: true };
    }
    const retry = await this.retried(user, roomId, dto.clientMsgId);
    if (retry) return retry;
    await this.access.room(user, roomId, 'write');
    throw AppError.invalid('Validation failed', {
      replyToId: ['replyToId is not a message of this room'],
    });
  }

  /**
   * A send with attachments: not the group commit but a transaction of its own, so the claim
   * of the uploads commits or rolls back with the message (docs/architecture.md § Attachments).
   * Sends without attachments never come here. Null when nothing was inserted (as the batch).
   */
  private sendWithAttachments(m: NewUserMessage, ids: string[]): Promise<MessageDto | null> {
    if (ids.length > this.perMessage) {
      throw AppError.invalid('Validation failed', {
        attachmentIds: [`at most ${this.perMessage} attachments per message`],
      });
    }
    if (new Set(ids.map((id) => id.toLowerCase())).size !== ids.length) {
      throw AppError.invalid('Validation failed', {
        attachmentIds: ['attachmentIds must not repeat an id'],
      });
    }
    return this.store.transaction(async (tx) => {
      const message = await this.store.insertOne(m, tx);
      if (!message) return null;
      const claimed = await this.attachments.claim(tx, ids, message.id, m.author.id, m.roomId);
      if (claimed.length !== ids.length) {
        throw AppError.invalid('Validation failed', {
          attachmentIds: [
            'each id must be an upload of yours to this room, finished and not yet sent',
          ],
        });
      }
      await this.store.setAttachments(tx, message, claimed);
      return message;
    });
  }

  /** The message stored the first time this clientMsgId was sent, if any. */
  private async retried(
    user: AuthUser,
    roomId: string,
    clientMsgId: string,
  ): Promise<SendResult | null> {
    const existing = await this.store.findByClientMsgId(user.id, clientMsgId);
    if (!existing) return null;
    if (existing.roomId !== roomId)
      throw AppError.conflict('clientMsgId was already used in another room');
    return { message: forViewer(existing, user.id), created: false };
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
    return { ...page, items: await this.forViewer(user, roomId, page.items), hasMore };
  }

  async changes(user: AuthUser, roomId: string, q: ChangesQuery): Promise<ChangesPageDto> {
    await this.access.room(user, roomId, 'read');
    const { items, more } = await this.store.changes(roomId, q.since, q.limit);
    return {
      items: await this.forViewer(user, roomId, items),
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
   * Mentions are resolved again from the new text: added ones get their rows, removed ones
   * lose them, in the edit's transaction.
   */
  async edit(user: AuthUser, id: number, content: string): Promise<MessageDto> {
    if (content.length > this.maxLength) {
      throw AppError.invalid('Validation failed', {
        content: [`content must be at most ${this.maxLength} characters`],
      });
    }
    const message = await this.visible(user, id, 'edit');
    const { filter } = await this.roomSettings.get(message.roomId);
    const screened = screenContent(filter, content);
    const mentions = await this.mentions.resolve(user, message.roomId, screened);
    const updated = await this.store.edit(
      id,
      message.roomId,
      user.id,
      screened,
      this.maxEdits,
      mentions,
    );
    if (updated === 'refused') await this.refusedWrite(user, message, 'edit');
    if (updated === 'gone' || updated === 'refused') throw AppError.notFound('Message');
    if (updated === 'limit') {
      throw AppError.conflict(
        `Edit limit reached: a message can be edited at most ${this.maxEdits} times`,
      );
    }
    this.events.emit('message.updated', { message: updated });
    return forViewer(updated, user.id);
  }

  /**
   * The author, the room's moderators or an admin turns a message into a tombstone. When it is
   * not the author's own (and not in a conversation, which has no moderators), it is a removal
   * by moderation: who and why are kept, audited (`message.remove`) in the same transaction,
   * and the reason is shown to the author and the room's moderators only. An author's reason
   * for deleting their own message is not kept.
   */
  async remove(user: AuthUser, id: number, reason?: string): Promise<void> {
    const message = await this.store.findById(id);
    if (!message || message.deletedAt) throw AppError.notFound('Message');
    const { room } = await this.access.message(user, message, 'delete');
    const moderation = !isAuthor(message, user.id) && room.kind !== 'conversation';
    const tombstone = moderation
      ? await this.store.transaction((em) => this.removeByModeration(user, message, reason, em))
      : message.attachments.length
        ? await this.store.transaction(async (em) => {
            const gone = await this.store.tombstone(id, message.roomId, undefined, em);
            if (gone) await this.attachments.release(em, id);
            return gone;
          })
        : await this.store.tombstone(id, message.roomId);
    if (!tombstone) throw AppError.notFound('Message');
    await this.announceDeleted(tombstone);
  }

  /**
   * A removal by moderation in the caller's transaction (`em`), audited there; the caller has
   * checked that `actor` may moderate the room. Announce the tombstone (announceDeleted) after
   * the commit; null when the message was already deleted.
   */
  async removeByModeration(
    actor: AuthUser,
    message: MessageDto,
    reason: string | undefined,
    em: EntityManager,
  ): Promise<MessageDto | null> {
    const removal = { by: actor.id, reason: reason ?? '' };
    const tombstone = await this.store.tombstone(message.id, message.roomId, removal, em);
    if (tombstone && message.attachments.length) await this.attachments.release(em, message.id);
    if (tombstone) {
      await this.audit.record(
        {
          actorId: actor.id,
          action: 'message.remove',
          targetType: 'message',
          targetId: String(message.id),
          roomId: message.roomId,
          reason: removal.reason,
          details: { authorId: message.author?.id ?? null },
        },
        em,
      );
    }
    return tombstone;
  }

  /**
   * The one emit of `message.deleted` (after commit). The reason of a removal by moderation
   * goes only to its author and the room's moderators and admins (`insiders`); the room
   * broadcast carries `removedByModeration` without it.
   */
  async announceDeleted(tombstone: MessageDto): Promise<void> {
    if (tombstone.removalReason === undefined) {
      this.events.emit('message.deleted', { message: tombstone });
      return;
    }
    const insiders = new Set(await this.access.moderatorIds(tombstone.roomId));
    if (tombstone.author?.kind === 'user') insiders.add(tombstone.author.id);
    this.events.emit('message.deleted', { message: tombstone, insiders: [...insiders] });
  }

  /**
   * A thread: its root and a page of replies, oldest first (keyset on the reply's id): the first
   * replies, or those after `after`, or the latest (`latest`), or the latest before `before`.
   * `id` may be the root or any reply (its thread is answered). Whoever may read the room.
   */
  async thread(user: AuthUser, id: number, q: ThreadQuery): Promise<ThreadPageDto> {
    const given = [q.after, q.before, q.latest || undefined].filter((v) => v !== undefined);
    if (given.length > 1) throw AppError.invalid('Use at most one of after, before and latest');
    const root = await this.threadRoot(id);
    await this.access.message(user, root, 'read');
    const [page, following] = await Promise.all([
      this.store.threadPage(
        root.id,
        q.before !== undefined || q.latest ? { before: q.before ?? null } : { after: q.after ?? 0 },
        q.limit,
      ),
      this.store.follows(root.id, user.id),
    ]);
    const [shownRoot, ...shown] = await this.forViewer(user, root.roomId, [root, ...page.items]);
    const { nextCursor, prevCursor } = page;
    return { root: shownRoot, items: shown, nextCursor, prevCursor, following };
  }

  /**
   * Follows or unfollows the thread of message `id` (a root, or a reply: its root). Members of
   * the room only (muted or not). An unfollow holds until the user follows again: replies and
   * mentions later do not undo it.
   */
  async follow(user: AuthUser, id: number, following: boolean): Promise<ThreadFollowDto> {
    const root = await this.threadRoot(id);
    await this.access.room(user, root.roomId, 'markRead');
    await this.store.setFollowing(root.id, user.id, following);
    return { rootId: root.id, following };
  }

  /** The root of the thread message `id` is in (itself when it is no reply); 404 when absent. */
  private async threadRoot(id: number): Promise<MessageDto> {
    const message = await this.store.findById(id);
    const root = message?.threadRootId ? await this.store.findById(message.threadRootId) : message;
    if (!root) throw AppError.notFound('Message');
    return root;
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
    const result = await this.store.react(
      id,
      message.roomId,
      user.id,
      emoji,
      added,
      this.maxReactions,
    );
    if (result === 'refused') await this.refusedWrite(user, message, 'react');
    if (result === 'full') {
      throw AppError.conflict(
        `Reaction limit reached: a message can have at most ${this.maxReactions} different emoji`,
      );
    }
    if (!result || result === 'refused') throw AppError.notFound('Message');
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

  /**
   * Messages as `user` sees them (forViewer): when one hides the reason of its removal from
   * them, the policy is asked once whether they moderate the room (then they see it).
   */
  private async forViewer(
    user: AuthUser,
    roomId: string,
    items: MessageDto[],
  ): Promise<MessageDto[]> {
    const moderator =
      items.some((m) => hidesReasonFrom(m, user.id)) &&
      (await this.access.may(user, roomId, 'moderate'));
    return items.map((m) => forViewer(m, user.id, moderator));
  }

  /**
   * The store refused a write the policy had allowed (muted, removed or archived since): the
   * policy says why now; if it allows again (lifted meanwhile), the client should retry.
   */
  private async refusedWrite(
    user: AuthUser,
    message: MessageDto,
    action: 'edit' | 'react',
  ): Promise<never> {
    await this.access.message(user, message, action);
    throw AppError.conflict('The room changed meanwhile: try again');
  }

  /** A live (not deleted) message the user may act on (AccessPolicy); 404 when not there. */
  private async visible(user: AuthUser, id: number, action: MessageAction): Promise<MessageDto> {
    const message = await this.store.findById(id);
    if (!message || message.deletedAt) throw AppError.notFound('Message');
    await this.access.message(user, message, action);
    return message;
  }
}
