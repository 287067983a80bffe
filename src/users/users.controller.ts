import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiErrors } from '../common/swagger';
import type { AuthUser } from '../auth/auth-user';
import { CurrentUser, Roles } from '../auth/decorators';
import {
  ListUsersQuery,
  PublicUserDto,
  SuspendUserDto,
  UpdateUserDto,
  UserDto,
  UserIdParam,
  UserPageDto,
} from './dto/user.dto';
import { UsersService } from './users.service';
import { RateLimit } from '../limits/limits.decorators';

@ApiTags('users')
@ApiBearerAuth()
@Controller('users')
export class UsersController {
  constructor(private readonly users: UsersService) {}

  @Get()
  @Roles('admin')
  @ApiOperation({ summary: 'List users (admin)' })
  @ApiOkResponse({ type: UserPageDto, description: 'A page of users, by username' })
  @ApiErrors(400, 401, 403)
  list(@Query() query: ListUsersQuery): Promise<UserPageDto> {
    return this.users.list(query);
  }

  @Get(':id')
  @ApiOperation({ summary: "A user's public profile" })
  @ApiOkResponse({ type: PublicUserDto, description: 'The public profile' })
  @ApiErrors(400, 401, 404)
  get(@Param() { id }: UserIdParam): Promise<PublicUserDto> {
    return this.users.profile(id);
  }

  @Patch(':id')
  @Roles('admin')
  @RateLimit('admin')
  @ApiOperation({ summary: 'Change role or disable a user (admin)' })
  @ApiOkResponse({ type: UserDto, description: 'The changed user' })
  @ApiErrors(400, 401, 403, 404, 409, 429)
  update(
    @CurrentUser() actor: AuthUser,
    @Param() { id }: UserIdParam,
    @Body() dto: UpdateUserDto,
  ): Promise<UserDto> {
    return this.users.update(actor, id, dto);
  }

  @Post(':id/suspension')
  @Roles('admin')
  @RateLimit('moderate')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Suspend a user for a while, with a reason (admin)',
    description:
      'Unlike disabling, a suspension ends by itself after `durationSec`. Every session of the ' +
      'user ends at once (live sockets get `session.revoked` with reason `suspended`); until the ' +
      'end, login and refresh answer 403 FORBIDDEN with `details: { reason, until }`. Suspending ' +
      'again replaces the end and the reason. Admins cannot be suspended (demote first). Audited ' +
      '(`user.suspend`).',
  })
  @ApiOkResponse({ type: UserDto, description: 'The suspended user, with suspendedUntil' })
  @ApiErrors(400, 401, [403, 'Not an admin, or the user is an admin'], 404, 429)
  suspend(
    @CurrentUser() actor: AuthUser,
    @Param() { id }: UserIdParam,
    @Body() dto: SuspendUserDto,
  ): Promise<UserDto> {
    return this.users.suspend(actor, id, dto);
  }

  @Delete(':id/suspension')
  @Roles('admin')
  @RateLimit('moderate')
  @ApiOperation({
    summary: "Lift a user's suspension (admin)",
    description:
      'They may log in again at once (sessions ended by the suspension stay ended). A user who ' +
      'is not suspended is answered the same. Audited (`user.unsuspend`) when a suspension was lifted.',
  })
  @ApiOkResponse({ type: UserDto, description: 'The user, no longer suspended' })
  @ApiErrors(400, 401, 403, 404, 429)
  unsuspend(@CurrentUser() actor: AuthUser, @Param() { id }: UserIdParam): Promise<UserDto> {
    return this.users.unsuspend(actor, id);
  }
}
