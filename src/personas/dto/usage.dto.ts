import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsISO8601, IsOptional, Matches, MaxLength } from 'class-validator';
import { PageLimit } from '../../common/pagination';
import type { UsageGroup } from '../persona-usage.store';
import { IsId } from '../../common/validation';

export const USAGE_GROUPS = ['user', 'room', 'persona', 'day'] as const satisfies UsageGroup[];

const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** A UTC day, YYYY-MM-DD, that exists (2026-02-30 is refused). */
function Day(): PropertyDecorator {
  return (target, key) => {
    IsOptional()(target, key);
    Matches(DAY, { message: `${String(key)} must be a day, YYYY-MM-DD` })(target, key);
    IsISO8601({ strict: true })(target, key);
  };
}

export class UsageQuery {
  @ApiPropertyOptional({
    enum: USAGE_GROUPS,
    default: 'user',
    description: 'What each item sums: one per user (who called the persona), room, persona or day',
  })
  @IsOptional()
  @IsIn(USAGE_GROUPS)
  groupBy: UsageGroup = 'user';

  @ApiPropertyOptional({
    format: 'date',
    example: '2026-01-01',
    description: 'First UTC day counted (inclusive); absent: from the first',
  })
  @Day()
  from?: string;

  @ApiPropertyOptional({
    format: 'date',
    example: '2026-01-31',
    description: 'Last UTC day counted (inclusive); absent: up to today',
  })
  @Day()
  to?: string;

  @ApiPropertyOptional({ format: 'uuid', description: 'Only replies this user called for' })
  @IsOptional()
  @IsId()
  userId?: string;

  @ApiPropertyOptional({
    format: 'uuid',
    description:
      'Only replies in this group room (a conversation matches nothing, as an unknown id)',
  })
  @IsOptional()
  @IsId()
  roomId?: string;

  @ApiPropertyOptional({ format: 'uuid', description: 'Only replies of this persona' })
  @IsOptional()
  @IsId()
  personaId?: string;

  @ApiPropertyOptional({
    maxLength: 36,
    description: 'Cursor: items after this key (the previous page’s nextCursor)',
  })
  @IsOptional()
  @Matches(/^(?:\d{4}-\d{2}-\d{2}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/, {
    message: 'after is not a valid usage cursor',
  })
  @MaxLength(36)
  after?: string;

  @PageLimit(1000, 100)
  limit: number = 100;
}

export class UsageItemDto {
  @ApiProperty({
    example: '3f1c2d9e-2b9c-4f7e-9d0a-6c1b2a3d4e5f',
    description:
      'The user, room or persona id, or the day (YYYY-MM-DD), per groupBy; by room, every ' +
      "private conversation is summed in one item with the key 'private' (name 'private conversations')",
  })
  key: string;
  @ApiPropertyOptional({
    nullable: true,
    type: String,
    example: 'alice',
    description:
      'The username, room name or persona handle as it is now (null when deleted); absent by day',
  })
  name?: string | null;
  @ApiProperty({ example: 12, description: 'Persona replies started' })
  generations: number;
  @ApiProperty({ example: 4120 })
  promptTokens: number;
  @ApiProperty({ example: 610 })
  completionTokens: number;
  @ApiProperty({ example: 4730, description: 'promptTokens + completionTokens' })
  totalTokens: number;
}

export class UsagePageDto {
  @ApiProperty({ enum: USAGE_GROUPS })
  groupBy: UsageGroup;
  @ApiProperty({ type: [UsageItemDto], description: 'By key, ascending' })
  items: UsageItemDto[];
  @ApiProperty({ nullable: true, type: String, description: 'Pass as `after` for the next page' })
  nextCursor: string | null;
}
