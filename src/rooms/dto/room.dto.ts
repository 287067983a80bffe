import { ApiProperty, ApiPropertyOptional, OmitType, PartialType } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsIn, IsOptional, IsString, Matches, MaxLength, MinLength } from 'class-validator';
import { IsCursor, MessageDto } from '../../messages/dto/message.dto';
import {
  ROOM_KINDS,
  type MemberRole,
  NOTIFY_LEVELS,
  type NotifyLevel,
  type RoomKind,
  VISIBILITIES,
  type Visibility,
} from '../room.entity';
import { PageLimit, ACTIVITY_CURSOR } from '../../common/pagination';
import { Omittable, IsId } from '../../common/validation';
import type { SameShape } from '../../common/wire';
import type * as Wire from '../../common/wire';

const trim = ({ value }: { value: unknown }) => (typeof value === 'string' ? value.trim() : value);

export class RoomIdParam {
  @ApiProperty({ format: 'uuid' })
  @IsId()
  id: string;
}

export class RoomMemberParams extends RoomIdParam {
  @ApiProperty({ format: 'uuid' })
  @IsId()
  userId: string;
}

export class UserIdOnlyParam {
  @ApiProperty({ format: 'uuid' })
  @IsId()
  userId: string;
}

export class CreateRoomDto {
  @ApiProperty({ example: 'general', description: 'Unique (any case), 1–80 characters' })
  @Transform(trim)
  @IsString()
  @MinLength(1)
  @MaxLength(80)
  name: string;

  @ApiPropertyOptional({ example: 'Company-wide announcements and chatter' })
  @Omittable()
  @Transform(trim)
  @IsString()
  @MaxLength(1000)
  description?: string;

  @ApiPropertyOptional({
    example: 'friendly, concise',
    description: 'Tone hint; also given to personas as context',
  })
  @Omittable()
  @Transform(trim)
  @IsString()
  @MaxLength(200)
  theme?: string;

  /**
   * Defaults to public in RoomsService.create, not with an initialiser here: mapped types
   * (PartialType, OmitType) copy initialisers, and a PATCH without `visibility` must never make
   * a private room public.
   */
  @ApiPropertyOptional({
    enum: VISIBILITIES,
    example: 'public',
    default: 'public',
    description: 'Who can see and join the room; `public` when left out',
  })
  @Omittable()
  @IsIn(VISIBILITIES)
  visibility?: Visibility;
}

/** Every field may be left out; none may be null (the columns are NOT NULL). */
export class UpdateRoomDto extends PartialType(OmitType(CreateRoomDto, ['visibility']), {
  skipNullProperties: false,
}) {
  @ApiPropertyOptional({ enum: VISIBILITIES, example: 'public' })
  @Omittable()
  @IsIn(VISIBILITIES)
  visibility?: Visibility;
}

export class RoomDto implements Wire.RoomDto {
  @ApiProperty({ format: 'uuid' })
  id: string;
  @ApiProperty({ example: 'general' })
  name: string;
  @ApiProperty({ example: '' })
  description: string;
  @ApiProperty({ example: '' })
  theme: string;
  @ApiProperty({ enum: ROOM_KINDS })
  kind: RoomKind;
  @ApiProperty({ enum: VISIBILITIES })
  visibility: Visibility;
  @ApiProperty({ format: 'uuid', nullable: true, type: String })
  createdBy: string | null;
  @ApiProperty()
  createdAt: Date;
  @ApiProperty()
  updatedAt: Date;
  @ApiProperty({
    example: 0,
    description:
      'Slow mode: least time between two messages of one member, in ms (0: off; moderators are exempt)',
  })
  slowModeMs: number;
  @ApiProperty({ example: 12 })
  memberCount: number;
  @ApiProperty({ description: 'Whether the caller is a member' })
  joined: boolean;
  @ApiPropertyOptional({ enum: ['owner', 'moderator', 'member'], nullable: true, type: String })
  myRole: MemberRole | null;
  @ApiProperty({
    nullable: true,
    type: Date,
    description: 'Set while the room is archived (read-only for everyone)',
  })
  archivedAt: Date | null;
}

/** `room.updated` (socket only): the room without the per-viewer `joined` and `myRole`. */
export class RoomUpdatedDto
  extends OmitType(RoomDto, ['joined', 'myRole'] as const)
  implements Wire.RoomUpdated {}

export class RoomSummaryDto extends RoomDto {
  @ApiProperty({
    example: 3,
    description:
      'Unread messages by others after my read marker, not deleted ones nor system notices ("bob joined"); capped at 1000; 0 when not joined',
  })
  unreadCount: number;
  @ApiProperty({
    example: 1,
    description:
      'Messages after my read marker that mention me (`@me`, `@here` while I was online, ' +
      '`@room`), not deleted ones; capped at 1000; 0 when not joined',
  })
  unreadMentions: number;
  @ApiProperty({ example: 1040 })
  lastReadMessageId: number;
  @ApiProperty({ type: MessageDto, nullable: true })
  lastMessage: MessageDto | null;
  @ApiProperty({
    enum: NOTIFY_LEVELS,
    nullable: true,
    type: String,
    description: 'My notification level here (PUT /rooms/{id}/notifications); null when not joined',
  })
  notify: NotifyLevel | null;
}

export class ListRoomsQuery {
  @PageLimit(200, 50)
  limit: number = 50;

  @ApiPropertyOptional({ description: 'nextCursor of the previous page' })
  @IsOptional()
  @Matches(ACTIVITY_CURSOR, { message: 'cursor is not a valid rooms cursor' })
  cursor?: string;

  @ApiPropertyOptional({ enum: ROOM_KINDS })
  @IsOptional()
  @IsIn(ROOM_KINDS)
  kind?: RoomKind;
}

export class RoomPageDto {
  @ApiProperty({
    type: [RoomSummaryDto],
    description: 'My rooms and public rooms, most recent activity first',
  })
  items: RoomSummaryDto[];
  @ApiProperty({ nullable: true, type: String })
  nextCursor: string | null;
}

export class MemberDto implements Wire.MemberDto {
  @ApiProperty({ format: 'uuid' })
  userId: string;
  @ApiProperty({ example: 'alice' })
  username: string;
  @ApiProperty({ nullable: true, type: String })
  displayName: string | null;
  @ApiProperty({ enum: ['owner', 'moderator', 'member'] })
  role: MemberRole;
  @ApiProperty()
  joinedAt: Date;
  @ApiProperty({ description: 'Muted in this room now: reads, but cannot write' })
  muted: boolean;
  @ApiProperty({
    nullable: true,
    type: String,
    format: 'date-time',
    description: 'When the mute ends; null when not muted or muted until lifted',
  })
  mutedUntil: string | null;
  @ApiProperty({
    nullable: true,
    type: String,
    example: null,
    description:
      "Why the member is muted ('' without a reason): shown to the muted member themself and " +
      "to the room's owner and moderators and admins; null for everyone else and when not muted",
  })
  muteReason: string | null;
}

export class ListMembersQuery {
  @PageLimit(500, 100)
  limit: number = 100;

  @ApiPropertyOptional({ description: 'Username of the last member of the previous page' })
  @IsOptional()
  @IsString()
  @MaxLength(32)
  after?: string;
}

export class MemberPageDto {
  @ApiProperty({ type: [MemberDto] })
  items: MemberDto[];
  @ApiProperty({ nullable: true, type: String })
  nextCursor: string | null;
}

export class AddMemberDto {
  @ApiProperty({
    format: 'uuid',
    example: '3f0c9a52-8e1d-4b7a-9c2e-5d6f7a8b9c0d',
    description: 'Id of an existing user',
  })
  @IsId()
  userId: string;
}

export class MarkReadDto {
  @ApiProperty({
    example: 1042,
    description: 'The newest message the user has seen (of this room)',
  })
  @IsCursor()
  messageId: number;
}

export class NotifyLevelDto {
  @ApiProperty({
    enum: NOTIFY_LEVELS,
    example: 'mentions',
    description:
      '`default` (= `all` in direct rooms and conversations, `mentions` elsewhere), `all` ' +
      '(every message), `mentions` (mentions, direct messages, replies in followed threads), ' +
      '`none` (nothing, mentions included)',
  })
  @IsIn(NOTIFY_LEVELS)
  level: NotifyLevel;
}

export class NotifySettingDto {
  @ApiProperty({ format: 'uuid' })
  roomId: string;
  @ApiProperty({ enum: NOTIFY_LEVELS, description: 'As set' })
  level: NotifyLevel;
  @ApiProperty({
    enum: ['all', 'mentions', 'none'],
    description: 'What `default` means in this room, or the level set',
  })
  effective: Exclude<NotifyLevel, 'default'>;
}

export class ReadStateDto implements Wire.ReadStateDto {
  @ApiProperty({ format: 'uuid' })
  roomId: string;
  @ApiProperty({ example: 1042, description: 'Never moves backwards' })
  lastReadMessageId: number;
  @ApiProperty({ example: 0 })
  unreadCount: number;
  @ApiProperty({ example: 0, description: 'Messages after the marker that mention me' })
  unreadMentions: number;
}

/** The DTOs have exactly the fields of their wire shapes (src/common/wire.ts). */
const _wire: [
  SameShape<RoomDto, Wire.RoomDto>,
  SameShape<RoomUpdatedDto, Wire.RoomUpdated>,
  SameShape<MemberDto, Wire.MemberDto>,
  SameShape<ReadStateDto, Wire.ReadStateDto>,
  SameShape<RoomKind, Wire.RoomKind>,
  SameShape<Visibility, Wire.Visibility>,
  SameShape<MemberRole, Wire.MemberRole>,
] = [true, true, true, true, true, true, true];
