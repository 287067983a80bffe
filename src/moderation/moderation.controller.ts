import { Body, Controller, Delete, Get, HttpCode, Param, Post, Put } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import type { AuthUser } from '../auth/auth-user';
import { CurrentUser, Roles } from '../auth/decorators';
import { ApiErrors } from '../common/swagger';
import { RateLimit } from '../limits/limits.decorators';
import { MemberDto, RoomDto, RoomIdParam, RoomMemberParams } from '../rooms/dto/room.dto';
import { BanDto, BanListDto, SanctionDto, SetMemberRoleDto } from './dto/moderation.dto';
import { ModerationService } from './moderation.service';

const SANCTION_RULES =
  'Moderators of the room, its owner and admins; nobody mutes or bans themselves, the owner ' +
  'or an admin, and only the owner or an admin a moderator.';

@ApiTags('moderation')
@ApiBearerAuth()
@ApiErrors(401)
@Controller()
export class ModerationController {
  constructor(private readonly moderation: ModerationService) {}

  @Put('rooms/:id/members/:userId/role')
  @RateLimit('rooms')
  @ApiOperation({
    summary: 'Make a member a moderator, or a member again (admins and the room owner)',
    description:
      "Group rooms only; the owner's role cannot change. Broadcast as `member.role.changed`; audited as `member.role`.",
  })
  @ApiOkResponse({ type: MemberDto, description: 'The member with the new role' })
  @ApiErrors(400, 403, 404)
  setRole(
    @CurrentUser() user: AuthUser,
    @Param() { id, userId }: RoomMemberParams,
    @Body() dto: SetMemberRoleDto,
  ): Promise<MemberDto> {
    return this.moderation.setRole(user, id, userId, dto.role);
  }

  @Post('rooms/:id/mutes')
  @RateLimit('rooms')
  @ApiOperation({
    summary: 'Mute a member for a duration or until lifted (moderators, owner, admins)',
    description:
      `${SANCTION_RULES} A muted member still reads; sends, edits and reactions answer 403 ` +
      'FORBIDDEN with `details: { reason, until }`. Muting again replaces the mute. Broadcast ' +
      'as `member.muted`; audited as `member.mute`.',
  })
  @ApiCreatedResponse({ type: MemberDto, description: 'The member, muted' })
  @ApiErrors(400, 403, 404)
  mute(
    @CurrentUser() user: AuthUser,
    @Param() { id }: RoomIdParam,
    @Body() dto: SanctionDto,
  ): Promise<MemberDto> {
    return this.moderation.mute(user, id, dto);
  }

  @Delete('rooms/:id/mutes/:userId')
  @RateLimit('rooms')
  @HttpCode(204)
  @ApiOperation({
    summary: 'Lift a mute (moderators, owner, admins)',
    description: 'Broadcast as `member.unmuted`; audited as `member.unmute`. 404 when not muted.',
  })
  @ApiNoContentResponse({ description: 'The mute is lifted' })
  @ApiErrors(400, 403, 404)
  unmute(@CurrentUser() user: AuthUser, @Param() { id, userId }: RoomMemberParams): Promise<void> {
    return this.moderation.unmute(user, id, userId);
  }

  @Post('rooms/:id/bans')
  @RateLimit('rooms')
  @ApiOperation({
    summary: 'Ban a user from a room for a duration or until lifted (moderators, owner, admins)',
    description:
      `${SANCTION_RULES} The membership is removed at once and the user's live sockets leave ` +
      'the room (`member.banned`, to the room and the user); until the ban ends they cannot ' +
      'join, be added or be invited (403 FORBIDDEN with `details: { reason, until }`). ' +
      'Audited as `member.ban`.',
  })
  @ApiCreatedResponse({ type: BanDto, description: 'The ban' })
  @ApiErrors(400, 403, 404)
  ban(
    @CurrentUser() user: AuthUser,
    @Param() { id }: RoomIdParam,
    @Body() dto: SanctionDto,
  ): Promise<BanDto> {
    return this.moderation.ban(user, id, dto);
  }

  @Delete('rooms/:id/bans/:userId')
  @RateLimit('rooms')
  @HttpCode(204)
  @ApiOperation({
    summary: 'Lift a ban (moderators, owner, admins); the user may join again',
    description: 'Sent as `member.unbanned`; audited as `member.unban`. 404 when not banned.',
  })
  @ApiNoContentResponse({ description: 'The ban is lifted' })
  @ApiErrors(400, 403, 404)
  unban(@CurrentUser() user: AuthUser, @Param() { id, userId }: RoomMemberParams): Promise<void> {
    return this.moderation.unban(user, id, userId);
  }

  @Get('rooms/:id/bans')
  @ApiOperation({ summary: 'Bans in force in a room (moderators, owner, admins)' })
  @ApiOkResponse({ type: BanListDto, description: 'The bans in force, newest first' })
  @ApiErrors(400, 403, 404)
  bans(@CurrentUser() user: AuthUser, @Param() { id }: RoomIdParam): Promise<BanListDto> {
    return this.moderation.bans(user, id);
  }

  @Post('rooms/:id/archive')
  @Roles('admin')
  @RateLimit('rooms')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Archive a group room (admin): read-only for everyone, history kept; reversible',
    description:
      'Sends, edits, reactions, joins and additions answer 403 FORBIDDEN "Room is archived"; ' +
      'history and search stay readable. Broadcast as `room.archived`; audited as ' +
      '`room.archive`. Archiving an archived room changes nothing.',
  })
  @ApiOkResponse({ type: RoomDto, description: 'The room, with `archivedAt` set' })
  @ApiErrors(400, 403, 404)
  archive(@CurrentUser() user: AuthUser, @Param() { id }: RoomIdParam): Promise<RoomDto> {
    return this.moderation.archive(user, id, true);
  }

  @Delete('rooms/:id/archive')
  @Roles('admin')
  @RateLimit('rooms')
  @ApiOperation({
    summary: 'Unarchive a room (admin): writable again',
    description: 'Broadcast as `room.unarchived`; audited as `room.unarchive`.',
  })
  @ApiOkResponse({ type: RoomDto, description: 'The room, with `archivedAt` null' })
  @ApiErrors(400, 403, 404)
  unarchive(@CurrentUser() user: AuthUser, @Param() { id }: RoomIdParam): Promise<RoomDto> {
    return this.moderation.archive(user, id, false);
  }
}
