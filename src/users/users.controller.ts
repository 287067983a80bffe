import { Body, Controller, Get, Param, Patch, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiErrors } from '../common/swagger';
import type { AuthUser } from '../auth/auth-user';
import { CurrentUser, Roles } from '../auth/decorators';
import {
  ListUsersQuery,
  PublicUserDto,
  UpdateUserDto,
  UserDto,
  UserIdParam,
  UserPageDto,
} from './dto/user.dto';
import { UsersService } from './users.service';

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
  @ApiOperation({ summary: 'Change role or disable a user (admin)' })
  @ApiOkResponse({ type: UserDto, description: 'The changed user' })
  @ApiErrors(400, 401, 403, 404, 409)
  update(
    @CurrentUser() actor: AuthUser,
    @Param() { id }: UserIdParam,
    @Body() dto: UpdateUserDto,
  ): Promise<UserDto> {
    return this.users.update(actor, id, dto);
  }
}
