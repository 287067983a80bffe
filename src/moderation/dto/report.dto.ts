import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsInt, IsOptional, IsString, Matches, Max, Min, MaxLength } from 'class-validator';
import { ACTIVITY_CURSOR, PageLimit } from '../../common/pagination';
import type { SameShape } from '../../common/wire';
import type * as Wire from '../../common/wire';
import { MessageDto } from '../../messages/dto/message.dto';
import { MAX_SANCTION_SEC } from './moderation.dto';
import { IsId } from '../../common/validation';

export const REPORT_CATEGORIES = ['spam', 'abuse', 'harassment', 'illegal', 'other'] as const;
export const REPORT_STATUSES = ['open', 'resolved', 'dismissed'] as const;
export const REPORT_ACTIONS = ['delete', 'mute', 'ban', 'none'] as const;
export type ReportCategory = Wire.ReportCategory;
export type ReportStatus = Wire.ReportStatus;
export type ReportAction = Wire.ReportAction;

export class ReportIdParam {
  @ApiProperty({ format: 'uuid' })
  @IsId()
  id: string;
}

export class CreateReportDto {
  @ApiProperty({ enum: REPORT_CATEGORIES, example: 'spam' })
  @IsIn(REPORT_CATEGORIES)
  category: ReportCategory;

  @ApiPropertyOptional({
    example: 'Posts the same link in every room',
    maxLength: 1000,
    description: 'What the moderators should know',
  })
  @IsOptional()
  @IsString()
  @MaxLength(1000)
  text?: string;
}

export class ResolveReportDto {
  @ApiProperty({
    enum: REPORT_ACTIONS,
    example: 'delete',
    description:
      '`delete` removes the message by moderation (with `reason`), `none` resolves without ' +
      'acting; `mute`/`ban` act on its author in the room',
  })
  @IsIn(REPORT_ACTIONS)
  action: ReportAction;

  @ApiPropertyOptional({
    example: 'Advertising',
    maxLength: 500,
    description: 'Why: kept with the report, and with the tombstone for `delete`',
  })
  @IsOptional()
  @IsString()
  @MaxLength(500)
  reason?: string;

  @ApiPropertyOptional({
    minimum: 1,
    maximum: MAX_SANCTION_SEC,
    example: 3600,
    description: '`mute`/`ban`: how long, in seconds (omitted: until lifted)',
  })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(MAX_SANCTION_SEC)
  durationSec?: number;
}

export class DismissReportDto {
  @ApiPropertyOptional({ example: 'Not against the rules', maxLength: 500 })
  @IsOptional()
  @IsString()
  @MaxLength(500)
  note?: string;
}

export class ReportsQuery {
  @ApiPropertyOptional({ enum: REPORT_STATUSES, default: 'open' })
  @IsOptional()
  @IsIn(REPORT_STATUSES)
  status: ReportStatus = 'open';

  @PageLimit(100, 50)
  limit: number = 50;

  @ApiPropertyOptional({ description: 'nextCursor of the previous page' })
  @IsOptional()
  @Matches(ACTIVITY_CURSOR, { message: 'cursor is not a valid reports cursor' })
  cursor?: string;
}

export class ReportDto implements Wire.ReportDto {
  @ApiProperty({ format: 'uuid' })
  id: string;
  @ApiProperty({ example: 1042 })
  messageId: number;
  @ApiProperty({ format: 'uuid' })
  roomId: string;
  @ApiProperty({ format: 'uuid' })
  reporterId: string;
  @ApiProperty({ enum: REPORT_CATEGORIES })
  category: ReportCategory;
  @ApiProperty({ example: 'Posts the same link in every room' })
  text: string;
  @ApiProperty({ enum: REPORT_STATUSES })
  status: ReportStatus;
  @ApiProperty({ enum: REPORT_ACTIONS, nullable: true, description: 'Set once resolved' })
  action: ReportAction | null;
  @ApiProperty({ description: "The resolution's reason, or the dismissal's note" })
  resolutionNote: string;
  @ApiProperty({ format: 'uuid', nullable: true, type: String })
  resolvedBy: string | null;
  @ApiProperty({ nullable: true, type: Date })
  resolvedAt: Date | null;
  @ApiProperty()
  createdAt: Date;
  @ApiProperty({
    type: MessageDto,
    nullable: true,
    description: 'The reported message as it is now (a tombstone once removed)',
  })
  message: MessageDto | null;
}

export class ReportPageDto {
  @ApiProperty({ type: [ReportDto], description: 'Newest first' })
  items: ReportDto[];
  @ApiProperty({ nullable: true, type: String, description: 'Pass as `cursor` for the next page' })
  nextCursor: string | null;
}

const _wire: [
  SameShape<ReportDto, Wire.ReportDto>,
  SameShape<ReportCategory, Wire.ReportCategory>,
] = [true, true];
