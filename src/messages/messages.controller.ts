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
  Res,
} from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiBody,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';
import type { AuthUser } from '../auth/auth-user';
import { CurrentUser } from '../auth/decorators';
import { ApiErrors } from '../common/swagger';
import { RoomIdParam } from '../rooms/dto/room.dto';
import {
  ChangesPageDto,
  ChangesQuery,
  EditMessageDto,
  HistoryPageDto,
  HistoryQuery,
  MessageDto,
  MessageEditPageDto,
  MessageEditsQuery,
  MessageIdParam,
  ReactionParams,
  ReactionsDto,
  RemoveMessageQuery,
  SearchPageDto,
  SearchQuery,
  SendMessageDto,
  ThreadFollowDto,
  ThreadPageDto,
  ThreadQuery,
} from './dto/message.dto';
import { MessagesService } from './messages.service';
import { NotDbBound, RateLimit } from '../limits/limits.decorators';

@ApiTags('messages')
@ApiBearerAuth()
@ApiErrors(401)
@Controller()
export class MessagesController {
  constructor(private readonly messages: MessagesService) {}

  @Post('rooms/:id/messages')
  @RateLimit('send')
  @NotDbBound()
  @ApiOperation({
    summary: 'Send a message (idempotent on clientMsgId)',
    description:
      '201 with the new message; 200 with the first message when the clientMsgId was already used.',
  })
  @ApiBody({
    type: SendMessageDto,
    // Without `replyToId`: an example id would not exist on the reader's server.
    examples: {
      message: {
        summary: 'A message',
        value: { clientMsgId: 'c6b1f7e0-4c1e-4a7b-9a57-2b0f1c9e8d11', content: 'Hello, world' },
      },
    },
  })
  @ApiCreatedResponse({
    type: MessageDto,
    description: 'The new message (also broadcast as message.created)',
  })
  @ApiOkResponse({ type: MessageDto, description: 'A retry: the message stored the first time' })
  @ApiErrors(400, 403, 404, 409, 422, [
    429,
    'Too many messages (rate limit), or slow mode: the room allows one message per interval; see Retry-After',
  ])
  async send(
    @CurrentUser() user: AuthUser,
    @Param() { id }: RoomIdParam,
    @Body() dto: SendMessageDto,
    @Res({ passthrough: true }) res: Response,
  ): Promise<MessageDto> {
    const { message, created } = await this.messages.send(user, id, dto);
    res.status(created ? 201 : 200);
    return message;
  }

  @Get('rooms/:id/messages')
  @ApiOperation({
    summary: 'History page, chronological, keyset cursors (before | after | around)',
  })
  @ApiOkResponse({ type: HistoryPageDto, description: 'A page of messages, oldest first' })
  @ApiErrors(400, 403, 404)
  history(
    @CurrentUser() user: AuthUser,
    @Param() { id }: RoomIdParam,
    @Query() q: HistoryQuery,
  ): Promise<HistoryPageDto> {
    return this.messages.history(user, id, q);
  }

  @Get('rooms/:id/messages/changes')
  @ApiOperation({
    summary: 'Everything created, edited, deleted or reacted to after a version',
    description: 'What reconnecting clients use to catch up: follow `cursor` while `hasMore`.',
  })
  @ApiOkResponse({
    type: ChangesPageDto,
    description: 'Messages created or changed after `since`, in version order',
  })
  @ApiErrors(400, 403, 404)
  changes(
    @CurrentUser() user: AuthUser,
    @Param() { id }: RoomIdParam,
    @Query() q: ChangesQuery,
  ): Promise<ChangesPageDto> {
    return this.messages.changes(user, id, q);
  }

  @Get('rooms/:id/messages/search')
  @ApiOperation({ summary: 'Full-text search in a room (members), newest first' })
  @ApiOkResponse({ type: SearchPageDto, description: 'Matching messages, newest first' })
  @ApiErrors(400, 403, 404)
  search(
    @CurrentUser() user: AuthUser,
    @Param() { id }: RoomIdParam,
    @Query() q: SearchQuery,
  ): Promise<SearchPageDto> {
    return this.messages.search(user, id, q);
  }

  @Patch('messages/:id')
  @RateLimit('edit')
  @ApiOperation({
    summary: 'Edit my message (history kept)',
    description:
      'At most MESSAGE_MAX_EDITS edits per message: the next one is a 409 CONFLICT ' +
      '("Edit limit reached"). A deleted message is a 404.',
  })
  @ApiOkResponse({
    type: MessageDto,
    description: 'The edited message (also broadcast as message.updated)',
  })
  @ApiErrors(400, 403, 404, 409, 422)
  edit(
    @CurrentUser() user: AuthUser,
    @Param() { id }: MessageIdParam,
    @Body() dto: EditMessageDto,
  ): Promise<MessageDto> {
    return this.messages.edit(user, id, dto.content);
  }

  @Delete('messages/:id')
  @RateLimit('edit')
  @HttpCode(204)
  @ApiOperation({
    summary:
      "Delete a message (author; room moderators and admins: anyone's); it stays as a tombstone",
    description:
      "Who: the author, the room's owner and moderators, and admins. Removing someone else's " +
      'message is a removal by moderation: the tombstone says `removedByModeration: true` to ' +
      'everyone, and `removalReason` (the optional `reason`) to its author and the room ' +
      'moderators and admins only. Audited (`message.remove`).',
  })
  @ApiNoContentResponse({
    description: 'Deleted: the message is now a tombstone (broadcast as message.deleted)',
  })
  @ApiErrors(400, [403, 'Neither the author nor a moderator of the room nor an admin'], 404)
  remove(
    @CurrentUser() user: AuthUser,
    @Param() { id }: MessageIdParam,
    @Query() { reason }: RemoveMessageQuery,
  ): Promise<void> {
    return this.messages.remove(user, id, reason);
  }

  @Get('messages/:id/edits')
  @ApiOperation({
    summary: 'Edit history of a message (previous contents, oldest first), paged',
    description: 'Follow `nextCursor` (as `cursor`) until it is null.',
  })
  @ApiOkResponse({
    type: MessageEditPageDto,
    description: 'A page of previous contents, oldest first',
  })
  @ApiErrors(400, 403, 404)
  edits(
    @CurrentUser() user: AuthUser,
    @Param() { id }: MessageIdParam,
    @Query() q: MessageEditsQuery,
  ): Promise<MessageEditPageDto> {
    return this.messages.edits(user, id, q);
  }

  @Get('messages/:id/thread')
  @ApiOperation({
    summary: 'A thread: its root and a page of replies, oldest first (keyset)',
    description:
      'Who: whoever may read the room. `id` is the root or any reply of the thread. Follow ' +
      '`nextCursor` (as `after`) until it is null.',
  })
  @ApiOkResponse({ type: ThreadPageDto, description: 'The root and a page of its replies' })
  @ApiErrors(400, 403, 404)
  thread(
    @CurrentUser() user: AuthUser,
    @Param() { id }: MessageIdParam,
    @Query() q: ThreadQuery,
  ): Promise<ThreadPageDto> {
    return this.messages.thread(user, id, q);
  }

  @Put('messages/:id/follow')
  @RateLimit('read')
  @ApiOperation({
    summary: 'Follow a thread (members of the room)',
    description:
      'Who: members of the room. `id` is the root or any reply. Idempotent. Authors, repliers ' +
      'and members mentioned in a thread follow it automatically.',
  })
  @ApiOkResponse({ type: ThreadFollowDto, description: 'Followed' })
  @ApiErrors(400, [403, 'Not a member of the room'], 404)
  follow(@CurrentUser() user: AuthUser, @Param() { id }: MessageIdParam): Promise<ThreadFollowDto> {
    return this.messages.follow(user, id, true);
  }

  @Delete('messages/:id/follow')
  @RateLimit('read')
  @ApiOperation({
    summary: 'Unfollow a thread (members of the room)',
    description:
      'Who: members of the room. Kept until followed again: a later reply or mention does not ' +
      'make the user follow it again.',
  })
  @ApiOkResponse({ type: ThreadFollowDto, description: 'Unfollowed' })
  @ApiErrors(400, [403, 'Not a member of the room'], 404)
  unfollow(
    @CurrentUser() user: AuthUser,
    @Param() { id }: MessageIdParam,
  ): Promise<ThreadFollowDto> {
    return this.messages.follow(user, id, false);
  }

  @Put('messages/:id/reactions/:emoji')
  @RateLimit('react')
  @ApiOperation({
    summary: 'React (one per user per emoji; idempotent)',
    description:
      'At most MESSAGE_MAX_REACTIONS different emoji per message: a new one past it is a 409 ' +
      'CONFLICT (adding to an emoji the message has already is always allowed).',
  })
  @ApiOkResponse({ type: ReactionsDto, description: "The message's reactions after the change" })
  @ApiErrors(400, 403, 404, 409)
  react(
    @CurrentUser() user: AuthUser,
    @Param() { id, emoji }: ReactionParams,
  ): Promise<ReactionsDto> {
    return this.messages.react(user, id, emoji, true);
  }

  @Delete('messages/:id/reactions/:emoji')
  @RateLimit('react')
  @ApiOperation({ summary: 'Remove my reaction' })
  @ApiOkResponse({ type: ReactionsDto, description: "The message's reactions after the change" })
  @ApiErrors(400, 403, 404)
  unreact(
    @CurrentUser() user: AuthUser,
    @Param() { id, emoji }: ReactionParams,
  ): Promise<ReactionsDto> {
    return this.messages.react(user, id, emoji, false);
  }
}
