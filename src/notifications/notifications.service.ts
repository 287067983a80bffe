import type { MessageDto } from '../messages/dto/message.dto';
import { BeforeApplicationShutdown, Injectable, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { OnEvent } from '@nestjs/event-emitter';
import { AccessPolicy } from '../access/access.policy';
import type { AuthUser } from '../auth/auth-user';
import { AppError } from '../common/errors';
import type { Env } from '../config/env';
import { type DomainEventMap, DomainEvents } from '../events/domain-events';
import { RoomMembersCache } from '../rooms/room-members.cache';
import type {
  MarkNotificationsReadDto,
  MarkedReadDto,
  NotificationPageDto,
  NotificationsQuery,
  UnreadNotificationsDto,
} from './dto/notification.dto';
import { type NewNotification, NotificationStore, type NotifyItem } from './notification.store';

/**
 * Notifications (docs/architecture.md, "Mentions, threads, notifications and push").
 *
 * Computed after commit, off the sender's ack path, in batches: `message.created` and
 * `message.updated` (an edit, which can add mentions) queue the message; a batch is written by
 * one statement (NotificationStore.insertBatch) that decides the recipients from current state,
 * like the send path's group commit (a pending queue, flushed on setImmediate, at most
 * NOTIFICATION_BATCH_MAX messages a statement, one batch at a time per instance). Each new row
 * is announced as `notification.created` (to the recipient's sockets, and to push).
 *
 * A crash between a message's commit and its batch loses that batch's notifications (the
 * messages and their unread counts are safe): the documented price of a one-statement send.
 */
@Injectable()
export class NotificationsService implements BeforeApplicationShutdown {
  private readonly logger = new Logger('Notifications');
  private readonly pending: NotifyItem[] = [];
  private scheduled = false;
  private running: Promise<void> | null = null;
  private readonly batchMax: number;

  constructor(
    private readonly store: NotificationStore,
    private readonly access: AccessPolicy,
    private readonly events: DomainEvents,
    private readonly members: RoomMembersCache,
    config: ConfigService<Env, true>,
  ) {
    this.batchMax = config.get('NOTIFICATION_BATCH_MAX', { infer: true });
  }

  /** System notices notify nobody; everything else is decided by the batch statement. */
  @OnEvent('message.created')
  onMessageCreated({ message }: DomainEventMap['message.created']): void {
    if (message.role === 'system') return;
    const pointed =
      mentionsAnyone(message) ||
      message.threadRootId !== null ||
      (message.role === 'assistant' && message.replyToId !== null);
    this.enqueue({
      messageId: message.id,
      edit: false,
      roomId: message.roomId,
      mayNotifyAll: !pointed,
    });
  }

  /** An edit may add mentions: only their new recipients are notified (once per message). */
  @OnEvent('message.updated')
  onMessageUpdated({ message }: DomainEventMap['message.updated']): void {
    // Edits only add mention recipients: an edit that mentions nobody notifies nobody.
    if (message.role !== 'system' && !message.deletedAt && mentionsAnyone(message))
      this.enqueue({ messageId: message.id, edit: true });
  }

  /**
   * Reading a room reads its notifications: moving the read marker (PUT /rooms/:id/read,
   * read.mark) marks the room's notifications up to that message read, as Slack does.
   */
  @OnEvent('read.updated')
  async onReadUpdated({ roomId, userId, lastReadMessageId }: DomainEventMap['read.updated']) {
    try {
      const ids = await this.store.markMany(userId, { roomId, upToMessageId: lastReadMessageId });
      this.announceRead(userId, ids);
    } catch (err) {
      this.logger.error(`marking notifications read failed: ${describe(err)}`);
    }
  }

  /**
   * A deleted message (by its author, or removed by moderation: say, spam mentioning everyone)
   * is no news any more: its unread notifications are marked read, and their owners told.
   */
  @OnEvent('message.deleted')
  async onMessageDeleted({ message }: DomainEventMap['message.deleted']) {
    try {
      const marked = await this.store.markMessageRead(message.id);
      for (const { userId, id } of marked) this.announceRead(userId, [id]);
    } catch (err) {
      this.logger.error(`marking notifications of a deleted message failed: ${describe(err)}`);
    }
  }

  /**
   * Writes the notifications of `items` now and announces the new ones (the batch's work; a
   * message given twice, or processed by two instances, notifies each recipient once).
   */
  async write(items: NotifyItem[]): Promise<NewNotification[]> {
    const created = await this.store.insertBatch(items);
    // Not news after all: a read marker that moved past a message while the batch ran (an
    // edit's new mention is news whatever the marker), or a message deleted meanwhile, whose
    // own marking (at its deletion) may have run before these rows were committed.
    const edits = new Set(items.filter((i) => i.edit).map((i) => i.messageId));
    const ids = created.map((n) => n.notification.id);
    const behindMarker = created
      .filter((n) => !edits.has(n.notification.messageId))
      .map((n) => n.notification.id);
    // Best effort: the rows are written, and a retried batch would find them and announce
    // nothing; should this fail, they are announced as unread.
    const read = ids.length
      ? await this.store.readBehindMarker(ids, behindMarker).catch(() => new Set<number>())
      : new Set<number>();
    const fresh = created.filter((n) => !read.has(n.notification.id));
    for (const n of fresh) this.events.emit('notification.created', n);
    return fresh;
  }

  async list(user: AuthUser, q: NotificationsQuery): Promise<NotificationPageDto> {
    const { items, more } = await this.store.page(user.id, q);
    return { items, nextCursor: more ? items[items.length - 1].id : null };
  }

  async markRead(user: AuthUser, id: number): Promise<void> {
    const marked = await this.store.markOne(user.id, id);
    if (!marked) throw AppError.notFound('Notification');
    if (marked.changed) this.announceRead(user.id, [id]);
  }

  /** All, or one room's (a room one may not view is a 404, as everywhere). */
  async markAllRead(user: AuthUser, dto: MarkNotificationsReadDto): Promise<MarkedReadDto> {
    if (dto.roomId) await this.access.room(user, dto.roomId, 'view');
    const ids = await this.store.markMany(user.id, { roomId: dto.roomId });
    this.announceRead(user.id, ids);
    return { marked: ids.length };
  }

  /** The socket's notification.read: one (`id`), one room's (`roomId`), or all. */
  async read(user: AuthUser, dto: { id?: number; roomId?: string }): Promise<MarkedReadDto> {
    if (dto.id === undefined) return this.markAllRead(user, dto);
    const marked = await this.store.markOne(user.id, dto.id);
    if (!marked) throw AppError.notFound('Notification');
    if (marked.changed) this.announceRead(user.id, [dto.id]);
    return { marked: marked.changed ? 1 : 0 };
  }

  async unread(user: AuthUser): Promise<UnreadNotificationsDto> {
    const byRoom = await this.store.unreadByRoom(user.id);
    return { total: byRoom.reduce((sum, r) => sum + r.count, 0), byRoom };
  }

  /** Drains the queue before the database closes. */
  async beforeApplicationShutdown(): Promise<void> {
    while (this.running || this.pending.length) {
      if (!this.running) this.run();
      await this.running;
    }
  }

  /**
   * Drops the messages that cannot notify anyone (see NotifyItem.mayNotifyAll), answered from
   * memory (RoomMembersCache, kept coherent by membership and notification-level changes): no
   * query for the batches of ordinary messages in ordinary rooms.
   */
  private async worthWriting(batch: NotifyItem[]): Promise<NotifyItem[]> {
    const kept: NotifyItem[] = [];
    for (const item of batch) {
      if (!item.mayNotifyAll || !item.roomId) kept.push(item);
      else if ((await this.members.get(item.roomId)).someNotifiedOfAll) kept.push(item);
    }
    return kept;
  }

  private announceRead(userId: string, ids: number[]): void {
    if (ids.length) this.events.emit('notifications.read', { userId, ids });
  }

  private enqueue(item: NotifyItem): void {
    this.pending.push(item);
    if (this.scheduled || this.running) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (!this.running) this.run();
    });
  }

  /** One batch at a time; the next starts when it ends, with what arrived meanwhile. */
  private run(): void {
    const batch = this.pending.splice(0, this.batchMax);
    if (!batch.length) return;
    this.running = this.flush(batch).finally(() => {
      this.running = null;
      if (this.pending.length) this.run();
    });
  }

  private async flush(all: NotifyItem[]): Promise<void> {
    try {
      const batch = await this.worthWriting(all);
      if (batch.length) await this.write(batch);
    } catch {
      // One bad message (say, its room deleted meanwhile) must not cost the others theirs.
      for (const item of all) {
        await this.write([item]).catch((err: unknown) =>
          this.logger.error(`notifications of message ${item.messageId} failed: ${describe(err)}`),
        );
      }
    }
  }
}

function mentionsAnyone(m: MessageDto): boolean {
  return m.mentions.length > 0 || !!m.mentionsHere || !!m.mentionsRoom;
}

function describe(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}
