import { Injectable } from '@nestjs/common';
import { AccessPolicy } from '../access/access.policy';
import { AuditService } from '../audit/audit.service';
import type { AuthUser } from '../auth/auth-user';
import { AppError } from '../common/errors';
import { DomainEvents } from '../events/domain-events';
import type { MessageDto } from '../messages/dto/message.dto';
import { forViewer, isAuthor, MessageStore } from '../messages/message-store';
import { MessageWriter, type NoticeTx } from '../messages/message-writer';
import { MessagesService } from '../messages/messages.service';
import {
  CreateReportDto,
  DismissReportDto,
  type ReportAction,
  ReportDto,
  ReportPageDto,
  ReportsQuery,
  ResolveReportDto,
} from './dto/report.dto';
import { ModerationService } from './moderation.service';
import { type Report, ReportsStore } from './reports.store';

/**
 * Reports of messages (issue 14): members report what they can read, once per message each;
 * the room's moderators (AccessPolicy 'moderate': owner, moderators, admins) see the room's
 * queue, admins the global one, and close a report exactly once (resolve with an action, or
 * dismiss). `report.created` / `report.resolved` go to the room's moderators and the admins.
 */
@Injectable()
export class ReportsService {
  constructor(
    private readonly store: ReportsStore,
    private readonly messageStore: MessageStore,
    private readonly messages: MessagesService,
    private readonly access: AccessPolicy,
    private readonly audit: AuditService,
    private readonly events: DomainEvents,
    private readonly moderation: ModerationService,
    private readonly writer: MessageWriter,
  ) {}

  /**
   * Whoever may read a live message reports it, except its author (reporting oneself is
   * meaningless) and in conversations (which have no moderators). A second report of the same
   * message by the same user is a CONFLICT.
   */
  async create(user: AuthUser, messageId: number, dto: CreateReportDto): Promise<ReportDto> {
    const message = await this.messageStore.findById(messageId);
    if (!message || message.deletedAt) throw AppError.notFound('Message');
    const { room } = await this.access.message(user, message, 'read');
    if (room.kind === 'conversation') throw AppError.forbidden('Conversations have no moderators');
    if (isAuthor(message, user.id)) throw AppError.forbidden('You cannot report your own message');
    const created = await this.store.create({
      messageId,
      roomId: message.roomId,
      reporterId: user.id,
      category: dto.category,
      text: dto.text ?? '',
    });
    if (created === 'duplicate') throw AppError.conflict('You have already reported this message');
    if (created === 'gone') throw AppError.notFound('Message');
    this.events.emit('report.created', {
      report: { ...created, message },
      to: await this.access.moderatorIds(created.roomId),
    });
    return { ...created, message: forViewer(message, user.id) };
  }

  /** A room's queue: its moderators and the admins. */
  async roomQueue(user: AuthUser, roomId: string, q: ReportsQuery): Promise<ReportPageDto> {
    await this.access.room(user, roomId, 'moderate');
    return this.withMessages(user, await this.store.page({ ...q, roomId }));
  }

  /** Every room's queue (the route is for admins). */
  async globalQueue(user: AuthUser, q: ReportsQuery): Promise<ReportPageDto> {
    return this.withMessages(user, await this.store.page({ ...q, roomId: null }));
  }

  /**
   * Closes the report with an action, once: concurrent resolutions and dismissals of one
   * report race on one conditional UPDATE, and the losers get CONFLICT having done nothing
   * (`delete` tombstones the message in the same transaction, after the report is claimed).
   */
  async resolve(user: AuthUser, id: string, dto: ResolveReportDto): Promise<ReportDto> {
    const found = await this.moderated(user, id);
    const message = await this.messageStore.findById(found.messageId);
    // Messages are only tombstoned: one that is gone went with its room, and its report too.
    if (!message) throw AppError.notFound('Report');
    // A removal is asked of the policy like DELETE /messages/:id (in an archived room only
    // admins remove messages).
    if (dto.action === 'delete' && message && !message.deletedAt)
      await this.access.message(user, message, 'delete');
    // mute/ban act on the message's author: asked of the policy before the report is claimed,
    // so a refusal (the author is the owner, an admin, a moderator…) leaves the report open,
    // and written in the claim's transaction, so a sanction that fails there (the author left
    // meanwhile) leaves it open too.
    let sanction: ((tx: NoticeTx) => Promise<unknown>) | undefined;
    if (dto.action === 'mute' || dto.action === 'ban') {
      if (message?.author?.kind !== 'user')
        throw AppError.invalid('Only a person can be muted or banned: this message has no author');
      const target = {
        userId: message.author.id,
        durationSec: dto.durationSec,
        reason: dto.reason,
      };
      sanction =
        dto.action === 'mute'
          ? await this.moderation.muting(user, found.roomId, target)
          : await this.moderation.banning(user, found.roomId, target);
    }
    let tombstone: MessageDto | null = null;
    const report = await this.close(user, found, 'resolved', dto.action, dto.reason, async (tx) => {
      if (dto.action === 'delete' && message && !message.deletedAt) {
        tombstone = await this.messages.removeByModeration(user, message, dto.reason, tx.em);
      }
      await sanction?.(tx);
    });
    if (tombstone) await this.messages.announceDeleted(tombstone);
    return this.announceClosed(user, report, tombstone ?? message);
  }

  /** Closes the report without acting, once (as `resolve`). */
  async dismiss(user: AuthUser, id: string, dto: DismissReportDto): Promise<ReportDto> {
    const found = await this.moderated(user, id);
    const report = await this.close(user, found, 'dismissed', null, dto.note);
    return this.announceClosed(user, report, await this.messageStore.findById(found.messageId));
  }

  /**
   * In one transaction: claims the open report (CONFLICT when it is closed, also by a
   * concurrent close that committed first; NOT_FOUND when it is gone, its room or message
   * deleted meanwhile, also when the transaction runs again after a deadlock), does `act`, and
   * audits the close.
   */
  private close(
    user: AuthUser,
    found: Report,
    status: 'resolved' | 'dismissed',
    action: ReportAction | null,
    note: string | undefined,
    act?: (tx: NoticeTx) => Promise<void>,
  ): Promise<Report> {
    return this.writer.transaction(async (tx) => {
      const { em } = tx;
      const change = { status, action, note: note ?? '', by: user.id };
      const closed = await this.store.close(found.id, change, em);
      // Nothing claimed: closed by someone else, or gone with its room or message (deleted
      // meanwhile: the report cascades), which answers as if the request came a moment later.
      if (!closed) {
        if (!(await this.store.findById(found.id, em))) throw AppError.notFound('Report');
        throw AppError.conflict('Report is no longer open');
      }
      await act?.(tx);
      await this.audit.record(
        {
          actorId: user.id,
          action: status === 'resolved' ? 'report.resolve' : 'report.dismiss',
          targetType: 'report',
          targetId: found.id,
          roomId: found.roomId,
          reason: change.note,
          details: { ...(action ? { action } : {}), messageId: found.messageId },
        },
        em,
      );
      return closed;
    });
  }

  /** The report, if `user` may moderate its room (404 for a room they may not view). */
  private async moderated(user: AuthUser, id: string): Promise<Report> {
    const found = await this.store.findById(id);
    if (!found) throw AppError.notFound('Report');
    await this.access.room(user, found.roomId, 'moderate');
    return found;
  }

  private async announceClosed(
    user: AuthUser,
    closed: Report,
    message: MessageDto | null,
  ): Promise<ReportDto> {
    // The event goes to the room's moderators and the admins only: the reason of a removal may
    // be in it.
    this.events.emit('report.resolved', {
      report: { ...closed, message },
      to: await this.access.moderatorIds(closed.roomId),
    });
    return { ...closed, message: message && forViewer(message, user.id, true) };
  }

  /** Each report with its message as it is now, as a moderator of its room sees it. */
  private async withMessages(
    user: AuthUser,
    page: { items: Report[]; nextCursor: string | null },
  ): Promise<ReportPageDto> {
    const messages = await this.messageStore.findByIds([
      ...new Set(page.items.map((r) => r.messageId)),
    ]);
    const byId = new Map(messages.map((m) => [m.id, forViewer(m, user.id, true)]));
    return {
      items: page.items.map((r) => ({ ...r, message: byId.get(r.messageId) ?? null })),
      nextCursor: page.nextCursor,
    };
  }
}
