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
import { CurrentUser } from '../auth/decorators';
import { ApiErrors } from '../common/swagger';
import { RateLimit } from '../limits/limits.decorators';
import { CreatePusherDto, PusherDto, PusherIdParam, PushSettingsDto } from './dto/push.dto';
import { PushService } from './push.service';

/** A user's push devices (pushers) and push settings: any signed-in user, for themselves. */
@ApiTags('push')
@ApiBearerAuth()
@ApiErrors(401)
@Controller('push')
export class PushController {
  constructor(private readonly push: PushService) {}

  @Post('pushers')
  @RateLimit('push')
  @ApiOperation({
    summary: 'Register a device for push (any user, for themselves)',
    description:
      'Upserted by (appId, pushKey): registering again updates it; a push key another user ' +
      'registered moves to you. Parlor POSTs a signed JSON payload to `url` for each ' +
      'notification created while you have no socket connected (docs/operations.md). Counted ' +
      'in the `push` bucket (RATE_LIMIT_PUSH). The pusher belongs to the session that ' +
      'registered it: when that session ends (logout, a password change ending the other ' +
      'sessions, a disable or suspension), the pusher is removed and nothing more is sent to it.',
  })
  @ApiCreatedResponse({ type: PusherDto, description: 'The pusher as registered' })
  @ApiErrors(
    [400, 'Invalid body, or a URL refused (scheme, host not allowed, non-public address)'],
    [409, 'PUSH_MAX_PUSHERS_PER_USER pushers already'],
    429,
    [503, 'Push is off on this server (PUSH_HMAC_SECRET unset)'],
  )
  register(@CurrentUser() user: AuthUser, @Body() dto: CreatePusherDto): Promise<PusherDto> {
    return this.push.register(user, dto);
  }

  @Get('pushers')
  @ApiOperation({ summary: 'My pushers (any user)' })
  @ApiOkResponse({ type: [PusherDto], description: 'My pushers, oldest first' })
  list(@CurrentUser() user: AuthUser): Promise<PusherDto[]> {
    return this.push.list(user);
  }

  @Delete('pushers/:id')
  @HttpCode(204)
  @RateLimit('push')
  @ApiOperation({ summary: 'Remove one of my pushers (any user; its pending pushes go too)' })
  @ApiNoContentResponse({ description: 'Removed' })
  @ApiErrors(400, [404, 'No such pusher of yours'], 429)
  remove(@CurrentUser() user: AuthUser, @Param() { id }: PusherIdParam): Promise<void> {
    return this.push.remove(user, id);
  }

  @Get('settings')
  @ApiOperation({ summary: 'My push settings (any user)' })
  @ApiOkResponse({ type: PushSettingsDto, description: 'My push settings' })
  settings(@CurrentUser() user: AuthUser): Promise<PushSettingsDto> {
    return this.push.settings(user);
  }

  @Put('settings')
  @RateLimit('push')
  @ApiOperation({
    summary: 'Change my push settings (any user)',
    description: '`hideContent`: pushes carry room, sender and counts, never the message text.',
  })
  @ApiOkResponse({ type: PushSettingsDto, description: 'My push settings after the change' })
  @ApiErrors(400, 429)
  updateSettings(
    @CurrentUser() user: AuthUser,
    @Body() dto: PushSettingsDto,
  ): Promise<PushSettingsDto> {
    return this.push.updateSettings(user, dto);
  }
}
