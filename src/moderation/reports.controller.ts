import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiBody,
  ApiCreatedResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import type { AuthUser } from '../auth/auth-user';
import { CurrentUser, Roles } from '../auth/decorators';
import { ApiErrors } from '../common/swagger';
import { RateLimit } from '../limits/limits.decorators';
import { MessageIdParam } from '../messages/dto/message.dto';
import { RoomIdParam } from '../rooms/dto/room.dto';
import {
  CreateReportDto,
  DismissReportDto,
  ReportDto,
  ReportIdParam,
  ReportPageDto,
  ReportsQuery,
  ResolveReportDto,
} from './dto/report.dto';
import { ReportsService } from './reports.service';

@ApiTags('moderation')
@ApiBearerAuth()
@ApiErrors(401)
@Controller()
export class ReportsController {
  constructor(private readonly reports: ReportsService) {}

  @Post('messages/:id/reports')
  @RateLimit('report')
  @ApiOperation({
    summary: 'Report a message (anyone who can read it, except its author)',
    description:
      'Once per message per user (again: 409 CONFLICT). Not in conversations (403). The room ' +
      'moderators and the admins get `report.created` on their sockets. Counted in the `report` ' +
      'bucket (RATE_LIMIT_REPORT per RATE_LIMIT_REPORT_WINDOW_MS).',
  })
  @ApiCreatedResponse({ type: ReportDto, description: 'The open report' })
  @ApiErrors(400, [403, 'Own message, a conversation, or cannot read the room'], 404, 409, 429)
  create(
    @CurrentUser() user: AuthUser,
    @Param() { id }: MessageIdParam,
    @Body() dto: CreateReportDto,
  ): Promise<ReportDto> {
    return this.reports.create(user, id, dto);
  }

  @Get('rooms/:id/reports')
  @ApiOperation({
    summary: "A room's report queue (its owner and moderators, admins), newest first",
    description: 'Filter by `status` (default `open`); follow `nextCursor` as `cursor`.',
  })
  @ApiOkResponse({ type: ReportPageDto, description: 'A page of reports with their messages' })
  @ApiErrors(400, [403, 'Not a moderator of this room'], 404)
  roomQueue(
    @CurrentUser() user: AuthUser,
    @Param() { id }: RoomIdParam,
    @Query() q: ReportsQuery,
  ): Promise<ReportPageDto> {
    return this.reports.roomQueue(user, id, q);
  }

  @Get('admin/reports')
  @Roles('admin')
  @ApiOperation({
    summary: "Every room's report queue (admin), newest first",
    description: 'Filter by `status` (default `open`); follow `nextCursor` as `cursor`.',
  })
  @ApiOkResponse({ type: ReportPageDto, description: 'A page of reports with their messages' })
  @ApiErrors(400, 403)
  globalQueue(@CurrentUser() user: AuthUser, @Query() q: ReportsQuery): Promise<ReportPageDto> {
    return this.reports.globalQueue(user, q);
  }

  @Post('reports/:id/resolve')
  @RateLimit('moderate')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Resolve a report with an action (room owner and moderators, admins)',
    description:
      '`delete` removes the message by moderation with `reason` (its author sees why); `none` ' +
      'closes it without acting. A report is closed once: resolving or dismissing a closed one ' +
      'is 409 CONFLICT, also when two moderators race. Audited (`report.resolve`, and ' +
      '`message.remove` for `delete`); `report.resolved` goes to the room moderators and admins.',
  })
  @ApiBody({
    type: ResolveReportDto,
    examples: {
      none: { summary: 'Resolve without acting', value: { action: 'none', reason: 'Handled' } },
      delete: {
        summary: 'Remove the message',
        value: { action: 'delete', reason: 'Advertising' },
      },
    },
  })
  @ApiOkResponse({ type: ReportDto, description: 'The resolved report' })
  @ApiErrors(400, [403, 'Not a moderator of this room'], 404, [409, 'The report is closed'], 429)
  resolve(
    @CurrentUser() user: AuthUser,
    @Param() { id }: ReportIdParam,
    @Body() dto: ResolveReportDto,
  ): Promise<ReportDto> {
    return this.reports.resolve(user, id, dto);
  }

  @Post('reports/:id/dismiss')
  @RateLimit('moderate')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Dismiss a report (room owner and moderators, admins)',
    description:
      'Closes it without acting, once (409 CONFLICT when closed). Audited (`report.dismiss`).',
  })
  @ApiOkResponse({ type: ReportDto, description: 'The dismissed report' })
  @ApiErrors(400, [403, 'Not a moderator of this room'], 404, [409, 'The report is closed'], 429)
  dismiss(
    @CurrentUser() user: AuthUser,
    @Param() { id }: ReportIdParam,
    @Body() dto: DismissReportDto,
  ): Promise<ReportDto> {
    return this.reports.dismiss(user, id, dto);
  }
}
