import { Controller, Delete, Get, HttpCode, Param } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import type { AuthUser } from '../auth/auth-user';
import { CurrentUser } from '../auth/decorators';
import { RateLimit } from '../limits/limits.decorators';
import { ApiErrors } from '../common/swagger';
import { RoomPersonaParams } from './dto/persona.dto';
import { PersonaMemoryDto } from './dto/persona-memory.dto';
import { PersonaMemory } from './persona-memory';

const WHO =
  'Group rooms: admins (others who see the room get 403). A conversation: its owner alone ' +
  '(anyone else, admins included, gets 404).';

/** A persona's memory of a room: its summary of the history that no longer fits the context. */
@ApiTags('personas')
@ApiBearerAuth()
@ApiErrors(401)
@Controller('rooms/:id/personas/:personaId/summary')
export class PersonaMemoryController {
  constructor(private readonly memory: PersonaMemory) {}

  @Get()
  @ApiTags('rooms')
  @ApiOperation({
    summary: "A persona's summary of the room's older history",
    description:
      'Made by the model when the history no longer fits PERSONA_CONTEXT_*, refreshed as more ' +
      'overflows, and sent to the model ahead of the recent messages (docs/personas.md, ' +
      `"Memory"). \`summary: null\` while there is none. ${WHO}`,
  })
  @ApiOkResponse({ type: PersonaMemoryDto, description: 'The summary, or none' })
  @ApiErrors(400, 403, 404)
  get(
    @CurrentUser() user: AuthUser,
    @Param() { id, personaId }: RoomPersonaParams,
  ): Promise<PersonaMemoryDto> {
    return this.memory.view(user, id, personaId);
  }

  @Delete()
  @RateLimit('admin')
  @HttpCode(204)
  @ApiTags('rooms')
  @ApiOperation({
    summary: "Reset a persona's summary of the room (idempotent)",
    description:
      'The persona forgets the older history; the next reply that overflows the context ' +
      `starts a new summary. Audited in group rooms. ${WHO}`,
  })
  @ApiNoContentResponse({ description: 'Reset (or there was none)' })
  @ApiErrors(400, 403, 404, 429)
  reset(
    @CurrentUser() user: AuthUser,
    @Param() { id, personaId }: RoomPersonaParams,
  ): Promise<void> {
    return this.memory.reset(user, id, personaId);
  }
}
