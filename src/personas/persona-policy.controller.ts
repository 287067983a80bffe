import { Body, Controller, Get, Param, Put } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { AuthUser } from '../auth/auth-user';
import { CurrentUser } from '../auth/decorators';
import { ApiErrors } from '../common/swagger';
import { RateLimit } from '../limits/limits.decorators';
import { RoomIdParam } from '../rooms/dto/room.dto';
import { PersonaPolicyDto, UpdatePersonaPolicyDto } from './dto/persona-policy.dto';
import { PersonaPolicyService } from './persona-policy.service';

const NOT_MODERATOR: [number, string] = [403, 'Not a moderator of this room, nor an admin'];

@ApiTags('personas')
@ApiBearerAuth()
@ApiErrors(401)
@Controller()
export class PersonaPolicyController {
  constructor(private readonly policy: PersonaPolicyService) {}

  @Get('rooms/:id/persona-policy')
  @ApiTags('rooms')
  @ApiOperation({
    summary: "The room's persona turn-taking and loop guards (members, admins)",
    description: 'A room that never set one has the `mention` policy without cross-talk.',
  })
  @ApiOkResponse({ type: PersonaPolicyDto, description: "The room's settings" })
  @ApiErrors(400, 403, 404)
  get(@CurrentUser() user: AuthUser, @Param() { id }: RoomIdParam): Promise<PersonaPolicyDto> {
    return this.policy.get(user, id);
  }

  @Put('rooms/:id/persona-policy')
  @RateLimit('moderate')
  @ApiTags('rooms')
  @ApiOperation({
    summary: "Change the room's persona turn-taking (room moderators, owner, admins)",
    description:
      'Group rooms only. Fields left out keep their value; `null` puts a loop-guard override ' +
      "back to the server's default. Audited; a change of `policy` or `crossTalk` is told to " +
      'the room with a system message. Every instance applies it at once.',
  })
  @ApiOkResponse({ type: PersonaPolicyDto, description: "The room's settings now" })
  @ApiErrors(400, NOT_MODERATOR, 404, 429)
  update(
    @CurrentUser() user: AuthUser,
    @Param() { id }: RoomIdParam,
    @Body() dto: UpdatePersonaPolicyDto,
  ): Promise<PersonaPolicyDto> {
    return this.policy.update(user, id, dto);
  }
}
