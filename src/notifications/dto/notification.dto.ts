import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional } from 'class-validator';
import { PageLimit } from '../../common/pagination';
import type { SameShape } from '../../common/wire';
import type * as Wire from '../../common/wire';
import { IsCursor, MessageAuthorDto } from '../../messages/dto/message.dto';
import { ROOM_KINDS, type RoomKind } from '../../rooms/room.entity';
import { NOTIFICATION_KINDS } from '../notification.entity';
import { IsId, Omittable, QueryBoolean } from '../../common/validation';

export type NotificationKind = Wire.NotificationKind;

export class NotificationIdParam {
  @ApiProperty()
  @IsCursor()
  id: number;
}

export class NotificationsQuery {
  @ApiPropertyOptional({ description: 'Only unread ones', default: false })
  @IsOptional()
  @QueryBoolean()
  unread: boolean = false;

  @ApiPropertyOptional({ description: 'nextCursor of the previous page (older than this id)' })
  @IsOptional()
  @IsCursor()
  before?: number;

  @ApiPropertyOptional({ format: 'uuid', description: "Only this room's" })
  @Omittable()
  @IsId()
  roomId?: string;

  @PageLimit(100, 50)
  limit: number = 50;
}

export class NotificationDto implements Wire.NotificationDto {
  @ApiProperty({ example: 17, description: 'Keyset cursor (pages are newest first)' })
  id: number;
  @ApiProperty({
    enum: NOTIFICATION_KINDS,
    description: 'Why: mention > direct > thread > message (the first that applies)',
  })
  kind: NotificationKind;
  @ApiProperty({ format: 'uuid' })
  roomId: string;
  @ApiProperty({ example: 'general' })
  roomName: string;
  @ApiProperty({ enum: ROOM_KINDS })
  roomKind: RoomKind;
  @ApiProperty({ example: 1042 })
  messageId: number;
  @ApiProperty({
    type: MessageAuthorDto,
    nullable: true,
    description: 'Who wrote the message (a user or a persona); null when that account is gone',
  })
  actor: MessageAuthorDto | null;
  @ApiPropertyOptional({
    example: '@alice can you look at this?',
    description: "The start of the message's text (200 characters); absent once it is deleted",
  })
  excerpt?: string;
  @ApiProperty()
  createdAt: Date;
  @ApiProperty({ nullable: true, type: Date })
  readAt: Date | null;
}

export class NotificationPageDto {
  @ApiProperty({ type: [NotificationDto], description: 'Newest first' })
  items: NotificationDto[];
  @ApiProperty({
    nullable: true,
    type: Number,
    description: 'Pass as `before` for the next (older) page; null on the last',
  })
  nextCursor: number | null;
}

export class MarkNotificationsReadDto {
  @ApiPropertyOptional({
    format: 'uuid',
    example: '3f0c9a52-8e1d-4b7a-9c2e-5d6f7a8b9c0d',
    description: "Only this room's notifications (left out: all of them)",
  })
  @Omittable()
  @IsId()
  roomId?: string;
}

export class MarkedReadDto {
  @ApiProperty({ example: 3, description: 'How many unread notifications were marked read' })
  marked: number;
}

export class RoomUnreadDto {
  @ApiProperty({ format: 'uuid' })
  roomId: string;
  @ApiProperty({ example: 2 })
  count: number;
}

export class UnreadNotificationsDto {
  @ApiProperty({ example: 3, description: 'Unread notifications in rooms I am a member of' })
  total: number;
  @ApiProperty({ type: [RoomUnreadDto], description: 'Rooms with unread notifications only' })
  byRoom: RoomUnreadDto[];
}

const _wire: [
  SameShape<NotificationDto, Wire.NotificationDto>,
  SameShape<NotificationKind, (typeof NOTIFICATION_KINDS)[number]>,
] = [true, true];
