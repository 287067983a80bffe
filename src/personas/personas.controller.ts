import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import { ApiProperty } from '@nestjs/swagger';
import type { AuthUser } from '../auth/auth-user';
import { CurrentUser, Roles } from '../auth/decorators';
import { RateLimit } from '../limits/limits.decorators';
import { ApiErrors } from '../common/swagger';
import { RoomIdParam } from '../rooms/dto/room.dto';
import {
  CreatePersonaDto,
  ListPersonasQuery,
  PersonaDto,
  PersonaIdParam,
  PersonaPageDto,
  RoomPersonaParams,
  UpdatePersonaDto,
} from './dto/persona.dto';
import { PersonasService } from './personas.service';
import { IsId } from '../common/validation';

class StreamIdParam {
  @ApiProperty({ format: 'uuid', description: 'messageId of persona.stream.start' })
  @IsId()
  streamId: string;
}

const PROMPT_NOTE = 'The system prompt is returned to admins only.';

@ApiTags('personas')
@ApiBearerAuth()
@ApiErrors(401)
@Controller()
export class PersonasController {
  constructor(private readonly personas: PersonasService) {}

  @Get('personas')
  @ApiOperation({ summary: 'Personas, by handle', description: PROMPT_NOTE })
  @ApiOkResponse({ type: PersonaPageDto, description: 'A page of personas' })
  @ApiErrors(400)
  list(@CurrentUser() user: AuthUser, @Query() q: ListPersonasQuery): Promise<PersonaPageDto> {
    return this.personas.list(user, q);
  }

  @Get('personas/:id')
  @ApiOperation({ summary: 'One persona', description: PROMPT_NOTE })
  @ApiOkResponse({ type: PersonaDto, description: 'The persona' })
  @ApiErrors(400, 404)
  get(@CurrentUser() user: AuthUser, @Param() { id }: PersonaIdParam): Promise<PersonaDto> {
    return this.personas.get(user, id);
  }

  @Post('personas')
  @Roles('admin')
  @RateLimit('admin')
  @ApiOperation({ summary: 'Create a persona (admin)' })
  @ApiCreatedResponse({ type: PersonaDto, description: 'The new persona' })
  @ApiErrors(400, 403, 409, 429)
  create(@CurrentUser() user: AuthUser, @Body() dto: CreatePersonaDto): Promise<PersonaDto> {
    return this.personas.create(user, dto);
  }

  @Patch('personas/:id')
  @Roles('admin')
  @RateLimit('admin')
  @ApiOperation({ summary: 'Change a persona (admin); `enabled: false` silences it everywhere' })
  @ApiOkResponse({ type: PersonaDto, description: 'The changed persona' })
  @ApiErrors(400, 403, 404, 409, 429)
  update(
    @CurrentUser() user: AuthUser,
    @Param() { id }: PersonaIdParam,
    @Body() dto: UpdatePersonaDto,
  ): Promise<PersonaDto> {
    return this.personas.update(user, id, dto);
  }

  @Delete('personas/:id')
  @Roles('admin')
  @RateLimit('admin')
  @HttpCode(204)
  @ApiOperation({
    summary: 'Delete a persona (admin)',
    description:
      'It leaves every room. Its past replies stay (author id kept, no handle); conversations ' +
      'with it stay readable but nothing answers there any more.',
  })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiErrors(400, 403, 404, 429)
  remove(@CurrentUser() user: AuthUser, @Param() { id }: PersonaIdParam): Promise<void> {
    return this.personas.remove(user, id);
  }

  @Get('rooms/:id/personas')
  @ApiTags('rooms')
  @ApiOperation({
    summary: 'Personas in a room (members, admins): who answers an @handle there',
    description: PROMPT_NOTE,
  })
  @ApiOkResponse({ type: [PersonaDto], description: 'The personas in the room' })
  @ApiErrors(400, 403, 404)
  inRoom(@CurrentUser() user: AuthUser, @Param() { id }: RoomIdParam): Promise<PersonaDto[]> {
    return this.personas.inRoom(user, id);
  }

  @Post('rooms/:id/personas/:personaId')
  @Roles('admin')
  @RateLimit('admin')
  @HttpCode(200)
  @ApiTags('rooms')
  @ApiOperation({
    summary: 'Put a persona in a group room (admin; idempotent)',
    description: 'Answers with the personas now in the room. The room gets a system message.',
  })
  @ApiOkResponse({ type: [PersonaDto], description: 'The personas now in the room' })
  @ApiErrors(400, 403, 404, 429)
  attach(
    @CurrentUser() user: AuthUser,
    @Param() { id, personaId }: RoomPersonaParams,
  ): Promise<PersonaDto[]> {
    return this.personas.attach(user, id, personaId);
  }

  @Delete('rooms/:id/personas/:personaId')
  @Roles('admin')
  @RateLimit('admin')
  @HttpCode(204)
  @ApiTags('rooms')
  @ApiOperation({ summary: 'Take a persona out of a group room (admin)' })
  @ApiNoContentResponse({ description: 'Taken out of the room' })
  @ApiErrors(400, 403, 404, 429)
  detach(
    @CurrentUser() user: AuthUser,
    @Param() { id, personaId }: RoomPersonaParams,
  ): Promise<void> {
    return this.personas.detach(user, id, personaId);
  }

  @Post('personas/streams/:streamId/cancel')
  @HttpCode(204)
  @ApiOperation({
    summary: 'Stop a reply while it streams (REST twin of the persona.cancel socket command)',
    description:
      'The person whose message called the persona, or an admin (not in conversations). The ' +
      'text produced so far is saved, with `finishReason: "cancelled"`. 404 once it has ended.',
  })
  @ApiNoContentResponse({
    description: 'Cancelled: the partial reply is saved and persona.stream.end follows',
  })
  @ApiErrors(400, 403, 404)
  cancel(@CurrentUser() user: AuthUser, @Param() { streamId }: StreamIdParam): Promise<void> {
    return this.personas.cancel(user, streamId);
  }
}
