import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Param,
  Patch,
  Post,
  Put,
  Query,
} from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiCreatedResponse,
  ApiExtraModels,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import type { AuthUser } from '../auth/auth-user';
import { CurrentUser, Roles } from '../auth/decorators';
import { ApiErrors } from '../common/swagger';
import {
  AddMemberDto,
  CreateRoomDto,
  ListMembersQuery,
  ListRoomsQuery,
  MarkReadDto,
  MemberDto,
  MemberPageDto,
  NotifyLevelDto,
  NotifySettingDto,
  ReadStateDto,
  RoomDto,
  RoomIdParam,
  RoomMemberParams,
  RoomPageDto,
  RoomUpdatedDto,
  UpdateRoomDto,
  UserIdOnlyParam,
} from './dto/room.dto';
import { RoomsService } from './rooms.service';
import { RateLimit } from '../limits/limits.decorators';

@ApiTags('rooms')
@ApiBearerAuth()
@ApiErrors(401)
// The payload of the room.updated socket event: in the schemas the AsyncAPI document draws on.
@ApiExtraModels(RoomUpdatedDto)
@Controller()
export class RoomsController {
  constructor(private readonly rooms: RoomsService) {}

  @Get('rooms')
  @ApiOperation({
    summary: 'Rooms visible to me (joined and public), with unread counts and last message',
  })
  @ApiOkResponse({ type: RoomPageDto, description: 'A page of rooms' })
  @ApiErrors(400)
  list(@CurrentUser() user: AuthUser, @Query() q: ListRoomsQuery): Promise<RoomPageDto> {
    return this.rooms.list(user, q);
  }

  @Post('rooms')
  @Roles('admin')
  @RateLimit('admin')
  @ApiOperation({ summary: 'Create a group room (admin); the creator becomes its owner' })
  @ApiCreatedResponse({
    type: RoomDto,
    description: 'The new room (also broadcast as room.created)',
  })
  @ApiErrors(400, 403, 409, 429)
  create(@CurrentUser() user: AuthUser, @Body() dto: CreateRoomDto): Promise<RoomDto> {
    return this.rooms.create(user, dto);
  }

  @Get('rooms/:id')
  @ApiOperation({ summary: 'One room (members; anyone for public rooms; admins)' })
  @ApiOkResponse({ type: RoomDto, description: 'The room' })
  @ApiErrors(400, 404)
  get(@CurrentUser() user: AuthUser, @Param() { id }: RoomIdParam): Promise<RoomDto> {
    return this.rooms.get(user, id);
  }

  @Patch('rooms/:id')
  @Roles('admin')
  @RateLimit('admin')
  @ApiOperation({ summary: 'Rename or change a group room (admin)' })
  @ApiOkResponse({
    type: RoomDto,
    description: 'The changed room (also broadcast as room.updated)',
  })
  @ApiErrors(400, 403, 404, 409, 429)
  update(
    @CurrentUser() user: AuthUser,
    @Param() { id }: RoomIdParam,
    @Body() dto: UpdateRoomDto,
  ): Promise<RoomDto> {
    return this.rooms.update(user, id, dto);
  }

  @Delete('rooms/:id')
  @Roles('admin')
  @RateLimit('admin')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete a room and its messages (admin); members are told live' })
  @ApiNoContentResponse({ description: 'Deleted, with its messages' })
  @ApiErrors(400, 403, 404, 429)
  remove(@CurrentUser() user: AuthUser, @Param() { id }: RoomIdParam): Promise<void> {
    return this.rooms.remove(user, id);
  }

  @Post('rooms/:id/join')
  @RateLimit('rooms')
  @HttpCode(200)
  @ApiOperation({ summary: 'Join a public room (idempotent)' })
  @ApiOkResponse({ type: RoomDto, description: 'The room, now joined' })
  @ApiErrors(400, 403, 404)
  join(@CurrentUser() user: AuthUser, @Param() { id }: RoomIdParam): Promise<RoomDto> {
    return this.rooms.join(user, id);
  }

  @Post('rooms/:id/leave')
  @RateLimit('rooms')
  @HttpCode(204)
  @ApiOperation({ summary: 'Leave a group room (not its owner, nor while muted: 403)' })
  @ApiNoContentResponse({ description: 'Left the room' })
  @ApiErrors(400, 403, 404)
  leave(@CurrentUser() user: AuthUser, @Param() { id }: RoomIdParam): Promise<void> {
    return this.rooms.leave(user, id);
  }

  @Get('rooms/:id/members')
  @ApiOperation({ summary: 'Members of a room (members and admins)' })
  @ApiOkResponse({ type: MemberPageDto, description: 'A page of members, by username' })
  @ApiErrors(400, 403, 404)
  members(
    @CurrentUser() user: AuthUser,
    @Param() { id }: RoomIdParam,
    @Query() q: ListMembersQuery,
  ): Promise<MemberPageDto> {
    return this.rooms.members(user, id, q);
  }

  @Post('rooms/:id/members')
  @RateLimit('rooms')
  @ApiOperation({ summary: 'Add (invite) a user to a group room (admins and room owners)' })
  @ApiCreatedResponse({ type: MemberDto, description: 'The new member' })
  @ApiErrors(400, 403, 404)
  addMember(
    @CurrentUser() user: AuthUser,
    @Param() { id }: RoomIdParam,
    @Body() dto: AddMemberDto,
  ): Promise<MemberDto> {
    return this.rooms.addMember(user, id, dto.userId);
  }

  @Delete('rooms/:id/members/:userId')
  @Roles('admin')
  @RateLimit('admin')
  @HttpCode(204)
  @ApiOperation({ summary: 'Remove a member (admin); their live delivery stops at once' })
  @ApiNoContentResponse({ description: 'Removed from the room' })
  @ApiErrors(400, 403, 404, 429)
  removeMember(
    @CurrentUser() user: AuthUser,
    @Param() { id, userId }: RoomMemberParams,
  ): Promise<void> {
    return this.rooms.removeMember(user, id, userId);
  }

  @Put('rooms/:id/read')
  @RateLimit('read')
  @ApiOperation({ summary: 'Mark messages read up to messageId (never moves backwards)' })
  @ApiOkResponse({ type: ReadStateDto, description: 'The read state after the change' })
  @ApiErrors(400, 403, 404)
  markRead(
    @CurrentUser() user: AuthUser,
    @Param() { id }: RoomIdParam,
    @Body() dto: MarkReadDto,
  ): Promise<ReadStateDto> {
    return this.rooms.markRead(user, id, dto.messageId);
  }

  @Put('rooms/:id/notifications')
  @RateLimit('rooms')
  @ApiTags('notifications')
  @ApiOperation({
    summary: 'Set my notification level in a room (members)',
    description:
      '`default` is `all` in direct rooms and conversations, `mentions` in group rooms; ' +
      '`mentions` keeps mentions, direct messages and replies in followed threads; `none` ' +
      'mutes the room, mentions included. Shown as `notify` in GET /rooms.',
  })
  @ApiOkResponse({ type: NotifySettingDto, description: 'The level set, and what it means here' })
  @ApiErrors(400, [403, 'Not a member of this room'], 404, 429)
  setNotify(
    @CurrentUser() user: AuthUser,
    @Param() { id }: RoomIdParam,
    @Body() dto: NotifyLevelDto,
  ): Promise<NotifySettingDto> {
    return this.rooms.setNotify(user, id, dto.level);
  }

  @Post('direct/:userId')
  @RateLimit('rooms')
  @HttpCode(200)
  @ApiTags('direct')
  @ApiOperation({
    summary: 'The direct room with a user (created on first call, the same room after)',
  })
  @ApiOkResponse({ type: RoomDto, description: 'The direct room (the same one on every call)' })
  @ApiErrors(400, 404)
  direct(@CurrentUser() user: AuthUser, @Param() { userId }: UserIdOnlyParam): Promise<RoomDto> {
    return this.rooms.direct(user, userId);
  }
}
