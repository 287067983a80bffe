import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform, Type } from 'class-transformer';
import {
  ArrayMaxSize,
  IsArray,
  IsUUID,
  IsInt,
  IsNotEmpty,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  MinLength,
  ValidateBy,
} from 'class-validator';
import { MESSAGE_ROLES, type MessageRole } from '../message.entity';
import { PageLimit } from '../../common/pagination';
import { QueryBoolean } from '../../common/validation';
import type { SameShape } from '../../common/wire';
import type * as Wire from '../../common/wire';

/** Message ids and versions are bigints in PostgreSQL and plain integers on the wire. */
export function IsCursor(): PropertyDecorator {
  return (target, key) => {
    Type(() => Number)(target, key);
    IsInt()(target, key);
    Min(0)(target, key);
    Max(Number.MAX_SAFE_INTEGER)(target, key);
  };
}

const trim = ({ value }: { value: unknown }) => (typeof value === 'string' ? value.trim() : value);

/**
 * How a persona reply ended: 'stop' and 'length' come from the model; 'cancelled', 'timeout'
 * and 'error' mark a reply cut short, whose text is what the model produced until then.
 */
export const FINISH_REASONS = [
  'stop',
  'length',
  'cancelled',
  'timeout',
  'error',
  'interrupted',
] as const;
export type FinishReason = (typeof FINISH_REASONS)[number];

/** A client's idempotency key for a send: what `clientMsgId` must match. */
export const CLIENT_MSG_ID_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

/** Hard cap on any message body before the configurable MESSAGE_MAX_LENGTH check. */
export const CONTENT_HARD_CAP = 100_000;

export class ReactionSummaryDto implements Wire.ReactionSummaryDto {
  @ApiProperty({ example: '👍' })
  emoji: string;
  @ApiProperty({ example: 2 })
  count: number;
  @ApiProperty({ type: [String], description: 'Who reacted, oldest first' })
  userIds: string[];
  @ApiPropertyOptional({
    description: 'Whether the caller reacted (REST and acks; absent in broadcasts)',
  })
  me?: boolean;
}

export class MessageAuthorDto implements Wire.MessageAuthorDto {
  @ApiProperty({ format: 'uuid' })
  id: string;
  @ApiProperty({ enum: ['user', 'persona'] })
  kind: 'user' | 'persona';
  @ApiPropertyOptional({ example: 'alice', description: 'For users' })
  username?: string;
  @ApiPropertyOptional({ example: 'sage', description: 'For personas' })
  handle?: string;
  @ApiPropertyOptional({ example: 'Alice', nullable: true, type: String })
  displayName?: string | null;
}

export class MentionDto implements Wire.MentionDto {
  @ApiProperty({ format: 'uuid' })
  userId: string;
  @ApiProperty({ example: 'bob' })
  username: string;
}

export class AttachmentDto implements Wire.AttachmentDto {
  @ApiProperty({ format: 'uuid' })
  id: string;
  @ApiProperty({ example: 'holiday.png', description: "The uploader's file name" })
  name: string;
  @ApiProperty({ example: 183204, description: 'Bytes' })
  size: number;
  @ApiProperty({
    example: 'image/png',
    description: 'Sniffed from the bytes; application/octet-stream when not recognised',
  })
  contentType: string;
  @ApiProperty({ example: 1280, nullable: true, type: Number, description: 'Images only' })
  width: number | null;
  @ApiProperty({ example: 960, nullable: true, type: Number, description: 'Images only' })
  height: number | null;
  @ApiProperty({
    example: '/api/v1/attachments/0b6e2f8a-3c1d-4e5f-8a9b-0c1d2e3f4a5b/thumbnail',
    nullable: true,
    type: String,
    description: 'Images only: path of a WebP thumbnail',
  })
  thumbnail: string | null;
}

export class MessageUsageDto implements Wire.MessageUsage {
  @ApiProperty({ example: 412, description: 'Tokens of the prompt sent to the model' })
  promptTokens: number;
  @ApiProperty({ example: 57, description: 'Tokens of the reply' })
  completionTokens: number;
  @ApiProperty({
    example: false,
    description:
      'true: estimated (one token per 4 characters, rounded up), the model server sent no `usage`',
  })
  estimated: boolean;
}

export class MessageDto implements Wire.MessageDto {
  @ApiProperty({ example: 1042, description: 'History cursor (one sequence for all rooms)' })
  id: number;
  @ApiProperty({
    example: 5310,
    description: 'Change cursor: bumped on every edit, delete and reaction',
  })
  version: number;
  @ApiProperty({ format: 'uuid' })
  roomId: string;
  @ApiProperty({ type: MessageAuthorDto, nullable: true, description: 'null for system messages' })
  author: MessageAuthorDto | null;
  @ApiProperty({ enum: MESSAGE_ROLES })
  role: MessageRole;
  @ApiPropertyOptional({ example: 'hello @sage', description: 'Absent on tombstones' })
  content?: string;
  @ApiProperty({ nullable: true, type: Number })
  replyToId: number | null;
  @ApiProperty({ nullable: true, type: String, example: '7d0c1e1a-client-generated' })
  clientMsgId: string | null;
  @ApiProperty({ type: [ReactionSummaryDto] })
  reactions: ReactionSummaryDto[];
  @ApiProperty()
  createdAt: Date;
  @ApiProperty({ nullable: true, type: Date })
  editedAt: Date | null;
  @ApiProperty({ nullable: true, type: Date, description: 'Set on tombstones (deleted messages)' })
  deletedAt: Date | null;
  @ApiPropertyOptional({
    enum: FINISH_REASONS,
    description:
      'Persona replies only: how generation ended. `cancelled`, `timeout` and `error` mark a ' +
      'partial reply (the text the model produced before it was stopped).',
  })
  finishReason?: FinishReason;
  @ApiPropertyOptional({
    type: MessageUsageDto,
    description: 'Persona replies only: the tokens their generation cost',
  })
  usage?: MessageUsageDto;
  @ApiPropertyOptional({
    example: true,
    description:
      'Tombstones only: true when someone other than the author (a moderator or an admin) removed it',
  })
  removedByModeration?: boolean;
  @ApiPropertyOptional({
    example: 'Off-topic advertising',
    description:
      "Why a moderator removed it: only in its author's and the room's moderators' and admins' " +
      'views (never in room broadcasts)',
  })
  removalReason?: string;
  @ApiProperty({
    type: [MentionDto],
    description:
      'Members mentioned by name (`@username`, any case), parsed by the server at send and edit; ' +
      'unknown names and non-members stay plain text',
  })
  mentions: MentionDto[];
  @ApiPropertyOptional({
    example: true,
    description: 'Present when the text says `@here`: the members online then are mentioned',
  })
  mentionsHere?: boolean;
  @ApiPropertyOptional({
    example: true,
    description:
      "Present when `@room` mentions every member (only the room's moderators and admins may; " +
      "others' `@room` stays plain text)",
  })
  mentionsRoom?: boolean;
  @ApiProperty({
    nullable: true,
    type: Number,
    example: null,
    description: "A reply's thread: the root of its parent's thread (threads are flat)",
  })
  threadRootId: number | null;
  @ApiPropertyOptional({ example: 3, description: 'Thread roots (after a first reply): replies' })
  replyCount?: number;
  @ApiPropertyOptional({ description: 'Thread roots: when the latest reply was written' })
  lastReplyAt?: Date;
  @ApiPropertyOptional({
    type: [String],
    description: "Thread roots: the last 5 distinct repliers' user ids, most recent first",
  })
  threadParticipants?: string[];
  @ApiProperty({
    type: [AttachmentDto],
    description: 'Files sent with the message, in the order given (empty on tombstones)',
  })
  attachments: AttachmentDto[];
}

export class ThreadPageDto implements Wire.ThreadPageDto {
  @ApiProperty({ type: MessageDto, description: 'The thread root (a tombstone if deleted)' })
  root: MessageDto;
  @ApiProperty({ type: [MessageDto], description: 'Replies, oldest first' })
  items: MessageDto[];
  @ApiProperty({
    nullable: true,
    type: Number,
    description: 'Pass as `after` for the page of later replies; null when none follow',
  })
  nextCursor: number | null;
  @ApiProperty({
    nullable: true,
    type: Number,
    description: 'Pass as `before` for the page of earlier replies; null when none precede',
  })
  prevCursor: number | null;
  @ApiProperty({ description: 'Whether the caller follows the thread' })
  following: boolean;
}

export class ThreadQuery {
  @ApiPropertyOptional({
    description: 'Replies with id > after (a nextCursor). Without a cursor: the first replies',
  })
  @IsOptional()
  @IsCursor()
  after?: number;

  @ApiPropertyOptional({ description: 'The latest replies with id < before (a prevCursor)' })
  @IsOptional()
  @IsCursor()
  before?: number;

  @ApiPropertyOptional({ description: "The latest replies (the thread's end)", default: false })
  @IsOptional()
  @QueryBoolean()
  latest?: boolean;

  @PageLimit(200, 50)
  limit: number = 50;
}

export class ThreadFollowDto {
  @ApiProperty({ example: 1042, description: 'The thread root' })
  rootId: number;
  @ApiProperty({ example: true })
  following: boolean;
}

/** The REST and socket DTOs have exactly the fields of their wire shapes (src/common/wire.ts). */
const _wire: [
  SameShape<ReactionSummaryDto, Wire.ReactionSummaryDto>,
  SameShape<MessageAuthorDto, Wire.MessageAuthorDto>,
  SameShape<MessageDto, Wire.MessageDto>,
  SameShape<AttachmentDto, Wire.AttachmentDto>,
  SameShape<MessageUsageDto, Wire.MessageUsage>,
  SameShape<MentionDto, Wire.MentionDto>,
  SameShape<ThreadPageDto, Wire.ThreadPageDto>,
  SameShape<HistoryPageDto, Wire.HistoryPageDto>,
  SameShape<FinishReason, Wire.FinishReason>,
  SameShape<MessageRole, Wire.MessageRole>,
] = [true, true, true, true, true, true, true, true, true, true];

export class SendMessageDto {
  @ApiProperty({
    example: 'c6b1f7e0-4c1e-4a7b-9a57-2b0f1c9e8d11',
    description:
      'Chosen by the client (e.g. a UUID); a retry with the same id returns the first message',
  })
  @IsString()
  @Matches(CLIENT_MSG_ID_PATTERN, {
    message: 'clientMsgId must be 1–64 of A–Z a–z 0–9 _ . : -',
  })
  clientMsgId: string;

  @ApiProperty({
    example: 'Hello, world',
    description:
      'At least 1 character after trimming (may be empty with attachmentIds); maxLength is MESSAGE_MAX_LENGTH',
  })
  @Transform(trim)
  @IsString()
  @ValidateBy({
    name: 'notEmptyWithoutAttachments',
    validator: {
      validate: (v: unknown, args) =>
        typeof v === 'string' &&
        (v.length > 0 || !!(args?.object as SendMessageDto).attachmentIds?.length),
      defaultMessage: () => 'content must not be empty',
    },
  })
  @MaxLength(CONTENT_HARD_CAP)
  content: string;

  @ApiPropertyOptional({ example: 1041, description: 'Id of an existing message of this room' })
  @IsOptional()
  @IsCursor()
  replyToId?: number;

  @ApiPropertyOptional({
    type: 'array',
    items: { type: 'string', format: 'uuid' },
    example: [],
    description:
      'Uploads of yours to this room not yet sent (POST /rooms/:id/attachments); at most ATTACHMENTS_PER_MESSAGE',
  })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(100)
  @IsUUID('all', { each: true })
  attachmentIds?: string[];
}

export class EditMessageDto {
  @ApiProperty({
    example: 'Hello, world (edited)',
    description: 'At least 1 character after trimming; maxLength is MESSAGE_MAX_LENGTH',
  })
  @Transform(trim)
  @IsString()
  @MinLength(1, { message: 'content must not be empty' })
  @MaxLength(CONTENT_HARD_CAP)
  content: string;
}

export class HistoryQuery {
  @ApiPropertyOptional({ description: 'Messages with id < before (older page)' })
  @IsOptional()
  @IsCursor()
  before?: number;

  @ApiPropertyOptional({ description: 'Messages with id > after (newer page)' })
  @IsOptional()
  @IsCursor()
  after?: number;

  @ApiPropertyOptional({ description: 'A page centred on this id (the id itself included)' })
  @IsOptional()
  @IsCursor()
  around?: number;

  @PageLimit(200, 50)
  limit: number = 50;
}

export class HistoryPageDto implements Wire.HistoryPageDto {
  @ApiProperty({
    type: [MessageDto],
    description: 'Chronological (oldest first), tombstones included',
  })
  items: MessageDto[];
  @ApiProperty({
    description: 'More in the direction asked (older for latest/before, newer for after)',
  })
  hasMore: boolean;
  @ApiProperty({ description: 'Older messages exist before items[0] (pass its id as `before`)' })
  hasMoreBefore: boolean;
  @ApiProperty({ description: 'Newer messages exist after the last item (pass its id as `after`)' })
  hasMoreAfter: boolean;
}

export class ChangesQuery {
  @ApiProperty({ description: 'The last version the client has seen (0 = from the beginning)' })
  @IsCursor()
  since: number;

  @PageLimit(500, 100)
  limit: number = 100;
}

export class ChangesPageDto {
  @ApiProperty({
    type: [MessageDto],
    description: 'Messages created or changed after `since`, by version',
  })
  items: MessageDto[];
  @ApiProperty()
  hasMore: boolean;
  @ApiProperty({ description: 'Pass as `since` for the next page (unchanged when empty)' })
  cursor: number;
}

export class SearchQuery {
  @ApiProperty({
    example: 'deploy friday',
    description: 'Words (web-search syntax: "phrase", -not, or)',
  })
  @IsString()
  @IsNotEmpty()
  @MaxLength(200)
  q: string;

  @ApiPropertyOptional({ description: 'Only results older than this id (next page)' })
  @IsOptional()
  @IsCursor()
  before?: number;

  @PageLimit(100, 20)
  limit: number = 20;
}

export class SearchPageDto {
  @ApiProperty({ type: [MessageDto], description: 'Newest first' })
  items: MessageDto[];
  @ApiProperty()
  hasMore: boolean;
}

export class MessageIdParam {
  @ApiProperty({ example: 1042 })
  @IsCursor()
  id: number;
}

/** The longest reason of a removal by moderation (messages.removal_reason). */
export const REMOVAL_REASON_MAX = 500;

export class RemoveMessageQuery {
  @ApiPropertyOptional({
    example: 'Off-topic advertising',
    maxLength: REMOVAL_REASON_MAX,
    description:
      "Why (moderators and admins removing someone else's message): kept with the tombstone, " +
      'shown to its author and the room moderators. Ignored when the author deletes their own.',
  })
  @IsOptional()
  @IsString()
  @MaxLength(REMOVAL_REASON_MAX)
  reason?: string;
}

/** Emoji code points only: pictographs, flag letters, skin tones, joiners, selectors, keycaps. */
const EMOJI_CODE_POINTS =
  /^(?:\p{Extended_Pictographic}|\p{Regional_Indicator}|\p{Emoji_Modifier}|\u200d|\ufe0f|\u20e3|[#*0-9])+$/u;
/**
 * Something that shows: a pictograph, a flag letter, a skin tone or a keycap. Without one, a
 * string of joiners (U+200D), variation selectors (U+FE0F), combining keycaps or bare digits
 * is invisible or plain text.
 */
const VISIBLE =
  /\p{Extended_Pictographic}|\p{Regional_Indicator}|\p{Emoji_Modifier}|[#*0-9]\ufe0f?\u20e3/u;
const SHORTCODE = /^:[a-z0-9_+-]{1,32}:$/;

/** A reaction: a :shortcode:, or emoji code points with at least one visible emoji among them. */
export function isReactionEmoji(v: unknown): boolean {
  return (
    typeof v === 'string' && (SHORTCODE.test(v) || (EMOJI_CODE_POINTS.test(v) && VISIBLE.test(v)))
  );
}

export class ReactionParams extends MessageIdParam {
  @ApiProperty({ example: '👍', description: 'An emoji (URL-encoded) or a :shortcode:' })
  @IsString()
  @MaxLength(32)
  @ValidateBy({
    name: 'isEmoji',
    validator: {
      validate: isReactionEmoji,
      defaultMessage: () => 'emoji must be an emoji or a :shortcode:',
    },
  })
  emoji: string;
}

export class ReactionsDto {
  @ApiProperty()
  messageId: number;
  @ApiProperty()
  version: number;
  @ApiProperty({ type: [ReactionSummaryDto] })
  reactions: ReactionSummaryDto[];
}

export class MessageEditDto {
  @ApiProperty({ description: 'The content before this edit' })
  content: string;
  @ApiProperty()
  editedAt: Date;
}

export class MessageEditsQuery {
  @PageLimit(100, 20)
  limit: number = 20;

  @ApiPropertyOptional({ description: 'nextCursor of the previous page' })
  @IsOptional()
  @IsCursor()
  cursor?: number;
}

export class MessageEditPageDto {
  @ApiProperty({
    type: [MessageEditDto],
    description: 'Previous contents, oldest first (at most MESSAGE_MAX_EDITS in all)',
  })
  items: MessageEditDto[];
  @ApiProperty({ nullable: true, type: String, description: 'Pass as `cursor` for the next page' })
  nextCursor: string | null;
}
