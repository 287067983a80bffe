import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import type { AuthUser } from '../auth/auth-user';
import { CurrentUser } from '../auth/decorators';
import { ApiErrors } from '../common/swagger';
import { RateLimit } from '../limits/limits.decorators';
import {
  MarkedReadDto,
  MarkNotificationsReadDto,
  NotificationIdParam,
  NotificationPageDto,
  NotificationsQuery,
  UnreadNotificationsDto,
} from './dto/notification.dto';
import { NotificationsService } from './notifications.service';

@ApiTags('notifications')
@ApiBearerAuth()
@ApiErrors(401)
@Controller('notifications')
export class NotificationsController {
  constructor(private readonly notifications: NotificationsService) {}

  @Get()
  @ApiOperation({
    summary: 'My notifications, newest first',
    description:
      'Mentions, direct messages, replies in threads I follow, and messages of rooms at level ' +
      '`all`; only in rooms I am a member of now. `unread=true` filters; follow `nextCursor` ' +
      'as `before`.',
  })
  @ApiOkResponse({ type: NotificationPageDto, description: 'A page of notifications' })
  @ApiErrors(400)
  list(
    @CurrentUser() user: AuthUser,
    @Query() q: NotificationsQuery,
  ): Promise<NotificationPageDto> {
    return this.notifications.list(user, q);
  }

  @Get('unread-count')
  @ApiOperation({ summary: 'How many of my notifications are unread, in all and per room' })
  @ApiOkResponse({ type: UnreadNotificationsDto, description: 'The unread counts' })
  unread(@CurrentUser() user: AuthUser): Promise<UnreadNotificationsDto> {
    return this.notifications.unread(user);
  }

  @Post('read')
  @RateLimit('read')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Mark all my notifications read, or one room’s',
    description: 'My sockets get `notifications.read` with the ids marked.',
  })
  @ApiOkResponse({ type: MarkedReadDto, description: 'How many were marked' })
  @ApiErrors(400, [404, 'No such room (or not visible to you)'], 429)
  markAll(
    @CurrentUser() user: AuthUser,
    @Body() dto: MarkNotificationsReadDto,
  ): Promise<MarkedReadDto> {
    return this.notifications.markAllRead(user, dto);
  }

  @Post(':id/read')
  @RateLimit('read')
  @HttpCode(204)
  @ApiOperation({
    summary: 'Mark one of my notifications read (idempotent)',
    description: 'My sockets get `notifications.read` when it was unread.',
  })
  @ApiNoContentResponse({ description: 'Read' })
  @ApiErrors(400, [404, 'No such notification of mine'], 429)
  markOne(@CurrentUser() user: AuthUser, @Param() { id }: NotificationIdParam): Promise<void> {
    return this.notifications.markRead(user, id);
  }
}
