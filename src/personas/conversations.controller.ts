import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
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
import { RoomIdParam } from '../rooms/dto/room.dto';
import {
  ConversationDto,
  ConversationPageDto,
  CreateConversationDto,
  ListConversationsQuery,
  UpdateConversationDto,
} from './dto/conversation.dto';
import { ConversationsService } from './conversations.service';
import { RateLimit } from '../limits/limits.decorators';

const ISOLATION =
  'A conversation is its owner’s alone: anyone else, admins included, gets 404 here and on its ' +
  'message routes.';

@ApiTags('conversations')
@ApiBearerAuth()
@ApiErrors(401)
@Controller('conversations')
export class ConversationsController {
  constructor(private readonly conversations: ConversationsService) {}

  @Get()
  @ApiOperation({ summary: 'My conversations with personas, newest activity first' })
  @ApiOkResponse({ type: ConversationPageDto, description: 'A page of my conversations' })
  @ApiErrors(400)
  list(
    @CurrentUser() user: AuthUser,
    @Query() q: ListConversationsQuery,
  ): Promise<ConversationPageDto> {
    return this.conversations.list(user, q);
  }

  @Post()
  @RateLimit('rooms')
  @ApiOperation({
    summary: 'Start a private conversation with a persona',
    description:
      'Creates a private room of kind `conversation` (its id is the conversation id) with the ' +
      'persona in it. Every message I send there is answered by the persona. ' +
      ISOLATION,
  })
  @ApiCreatedResponse({ type: ConversationDto, description: 'The new conversation' })
  @ApiErrors(400, 404)
  create(
    @CurrentUser() user: AuthUser,
    @Body() dto: CreateConversationDto,
  ): Promise<ConversationDto> {
    return this.conversations.create(user, dto);
  }

  @Get(':id')
  @ApiOperation({ summary: 'One of my conversations', description: ISOLATION })
  @ApiOkResponse({ type: ConversationDto, description: 'The conversation' })
  @ApiErrors(400, 404)
  get(@CurrentUser() user: AuthUser, @Param() { id }: RoomIdParam): Promise<ConversationDto> {
    return this.conversations.get(user, id);
  }

  @Patch(':id')
  @ApiOperation({ summary: 'Rename one of my conversations', description: ISOLATION })
  @ApiOkResponse({ type: ConversationDto, description: 'The renamed conversation' })
  @ApiErrors(400, 404)
  rename(
    @CurrentUser() user: AuthUser,
    @Param() { id }: RoomIdParam,
    @Body() dto: UpdateConversationDto,
  ): Promise<ConversationDto> {
    return this.conversations.rename(user, id, dto.title);
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({
    summary: 'Delete one of my conversations and all its messages',
    description: ISOLATION,
  })
  @ApiNoContentResponse({ description: 'Deleted, with its messages' })
  @ApiErrors(400, 404)
  remove(@CurrentUser() user: AuthUser, @Param() { id }: RoomIdParam): Promise<void> {
    return this.conversations.remove(user, id);
  }
}
