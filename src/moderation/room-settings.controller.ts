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
import { RoomDto, RoomIdParam } from '../rooms/dto/room.dto';
import {
  CreateWordFilterDto,
  FilterIdParam,
  RoomFilterParams,
  SlowModeDto,
  WordFilterDto,
  WordFilterListDto,
} from './dto/room-settings.dto';
import { RoomSettingsService } from './room-settings.service';
import { WordFilterService } from './word-filter.service';

const MODERATORS = 'Callable by the room’s owner and moderators, and by admins.';
const CONFLICT_409: [number, string] = [
  409,
  'The same pattern is already a rule of this list, or the list is full',
];

@ApiTags('moderation')
@ApiBearerAuth()
@ApiErrors(401)
@Controller()
export class RoomSettingsController {
  constructor(
    private readonly settings: RoomSettingsService,
    private readonly filters: WordFilterService,
  ) {}

  @Put('rooms/:id/slow-mode')
  @RateLimit('moderate')
  @ApiOperation({
    summary: 'Set or turn off slow mode (room moderators, owner, admins)',
    description:
      `${MODERATORS} Members may then send one message per interval in this room (REST and ` +
      'socket together, on every instance); a faster one is refused with 429 RATE_LIMITED and ' +
      'Retry-After (socket: retryAfterMs). Moderators are exempt. Announced as room.updated.',
  })
  @ApiOkResponse({ type: RoomDto, description: 'The room, with its new slowModeMs' })
  @ApiErrors(400, [403, 'Not a moderator of this room, nor an admin'], 404, 429)
  setSlowMode(
    @CurrentUser() user: AuthUser,
    @Param() { id }: RoomIdParam,
    @Body() dto: SlowModeDto,
  ): Promise<RoomDto> {
    return this.settings.setSlowMode(user, id, dto.seconds);
  }

  @Get('rooms/:id/filters')
  @ApiOperation({
    summary: 'The room’s word filter (room moderators, owner, admins)',
    description: MODERATORS,
  })
  @ApiOkResponse({ type: WordFilterListDto, description: 'The room’s own rules, oldest first' })
  @ApiErrors(400, [403, 'Not a moderator of this room, nor an admin'], 404)
  list(@CurrentUser() user: AuthUser, @Param() { id }: RoomIdParam): Promise<WordFilterListDto> {
    return this.filters.list(user, id);
  }

  @Post('rooms/:id/filters')
  @RateLimit('moderate')
  @ApiOperation({
    summary: 'Add a word-filter rule to the room (room moderators, owner, admins)',
    description: `${MODERATORS} Applies at once to sends and edits in this room, on every instance.`,
  })
  @ApiCreatedResponse({ type: WordFilterDto, description: 'The rule added' })
  @ApiErrors(400, [403, 'Not a moderator of this room, nor an admin'], 404, CONFLICT_409, 429)
  add(
    @CurrentUser() user: AuthUser,
    @Param() { id }: RoomIdParam,
    @Body() dto: CreateWordFilterDto,
  ): Promise<WordFilterDto> {
    return this.filters.add(user, id, dto);
  }

  @Delete('rooms/:id/filters/:filterId')
  @RateLimit('moderate')
  @HttpCode(204)
  @ApiOperation({
    summary: 'Remove a word-filter rule of the room (room moderators, owner, admins)',
    description: MODERATORS,
  })
  @ApiNoContentResponse({ description: 'Removed' })
  @ApiErrors(400, [403, 'Not a moderator of this room, nor an admin'], 404, 429)
  remove(
    @CurrentUser() user: AuthUser,
    @Param() { id, filterId }: RoomFilterParams,
  ): Promise<void> {
    return this.filters.remove(user, id, filterId);
  }

  @Get('admin/filters')
  @Roles('admin')
  @ApiOperation({
    summary: 'The global word filter (admins)',
    description: 'Applies in every room.',
  })
  @ApiOkResponse({ type: WordFilterListDto, description: 'The global rules, oldest first' })
  @ApiErrors([403, 'Requires role: admin'])
  listGlobal(): Promise<WordFilterListDto> {
    return this.filters.listGlobal();
  }

  @Post('admin/filters')
  @Roles('admin')
  @RateLimit('moderate')
  @ApiOperation({
    summary: 'Add a global word-filter rule (admins)',
    description: 'Applies at once to sends and edits in every room, on every instance.',
  })
  @ApiCreatedResponse({ type: WordFilterDto, description: 'The rule added' })
  @ApiErrors(400, [403, 'Requires role: admin'], CONFLICT_409, 429)
  addGlobal(
    @CurrentUser() admin: AuthUser,
    @Body() dto: CreateWordFilterDto,
  ): Promise<WordFilterDto> {
    return this.filters.addGlobal(admin, dto);
  }

  @Delete('admin/filters/:filterId')
  @Roles('admin')
  @RateLimit('moderate')
  @HttpCode(204)
  @ApiOperation({ summary: 'Remove a global word-filter rule (admins)' })
  @ApiNoContentResponse({ description: 'Removed' })
  @ApiErrors(400, [403, 'Requires role: admin'], 404, 429)
  removeGlobal(
    @CurrentUser() admin: AuthUser,
    @Param() { filterId }: FilterIdParam,
  ): Promise<void> {
    return this.filters.removeGlobal(admin, filterId);
  }
}
