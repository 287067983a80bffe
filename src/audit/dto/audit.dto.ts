import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform, Type } from 'class-transformer';
import {
  ArrayMaxSize,
  IsIn,
  IsInt,
  IsISO8601,
  IsOptional,
  IsString,
  Max,
  MaxLength,
  Min,
} from 'class-validator';
import { PageLimit } from '../../common/pagination';
import type { AuditAction, AuditTargetType } from '../../common/wire';
import { IsId } from '../../common/validation';

/** Every AuditAction, at run time (the `action` filter's allowed values). */
export const AUDIT_ACTIONS = [
  'room.create',
  'room.update',
  'room.delete',
  'room.archive',
  'room.unarchive',
  'room.slow_mode',
  'member.add',
  'member.remove',
  'member.role',
  'member.mute',
  'member.unmute',
  'member.ban',
  'member.unban',
  'user.role',
  'user.disable',
  'user.enable',
  'user.suspend',
  'user.unsuspend',
  'message.remove',
  'report.resolve',
  'report.dismiss',
  'filter.add',
  'filter.remove',
  'persona.create',
  'persona.update',
  'persona.delete',
  'persona.attach',
  'persona.detach',
  'persona.summary.reset',
  'room.persona_policy',
] as const satisfies readonly AuditAction[];

// A new AuditAction in wire.ts must be listed above, or tsc fails here (the filter would refuse it).
const EVERY_ACTION_LISTED: [Exclude<AuditAction, (typeof AUDIT_ACTIONS)[number]>] extends [never]
  ? true
  : never = true;
void EVERY_ACTION_LISTED;

const TARGET_TYPES = [
  'user',
  'room',
  'message',
  'persona',
  'report',
  'filter',
] as const satisfies readonly AuditTargetType[];

/** `action=a&action=b` and `action=a,b` alike. */
const toList = ({ value }: { value: unknown }): unknown[] =>
  (Array.isArray(value) ? (value as unknown[]) : [value]).flatMap((v: unknown): unknown[] =>
    typeof v === 'string'
      ? v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : [v],
  );

/** What the audit list and its export select (every filter optional, all of them ANDed). */
export class AuditFilterQuery {
  @ApiPropertyOptional({ format: 'uuid', description: 'Who acted' })
  @IsOptional()
  @IsId()
  actorId?: string;

  @ApiPropertyOptional({
    maxLength: 64,
    example: '3f1c2d9e-2b9c-4f7e-9d0a-6c1b2a3d4e5f',
    description: 'What was acted on (a user, room or persona id, a message or report id…)',
  })
  @IsOptional()
  @IsString()
  @MaxLength(64)
  targetId?: string;

  @ApiPropertyOptional({
    enum: AUDIT_ACTIONS,
    isArray: true,
    example: ['user.role', 'user.disable'],
    description: 'One or several actions (repeat the parameter, or separate with commas)',
  })
  @IsOptional()
  @Transform(toList)
  @ArrayMaxSize(AUDIT_ACTIONS.length)
  @IsIn(AUDIT_ACTIONS, { each: true })
  action?: AuditAction[];

  @ApiPropertyOptional({ format: 'uuid', description: 'Actions in (or on) this room' })
  @IsOptional()
  @IsId()
  roomId?: string;

  @ApiPropertyOptional({
    format: 'date-time',
    example: '2026-01-01T00:00:00Z',
    description: 'At or after this time (ISO 8601)',
  })
  @IsOptional()
  @IsISO8601({ strict: true })
  from?: string;

  @ApiPropertyOptional({
    format: 'date-time',
    example: '2026-02-01T00:00:00Z',
    description: 'Before this time (ISO 8601, exclusive)',
  })
  @IsOptional()
  @IsISO8601({ strict: true })
  to?: string;
}

export class ListAuditQuery extends AuditFilterQuery {
  @ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    description: 'Cursor: entries with id < before (pass the previous page’s nextCursor)',
  })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(Number.MAX_SAFE_INTEGER)
  before?: number;

  @PageLimit(200, 50)
  limit: number = 50;
}

export class AuditEntryDto {
  @ApiProperty({ example: 1042, description: 'Increasing; the keyset of the list' })
  id: number;
  @ApiProperty({ example: '2026-11-27T12:00:00.000Z' })
  at: Date;
  @ApiProperty({ format: 'uuid', nullable: true, type: String, description: 'Who acted' })
  actorId: string | null;
  @ApiPropertyOptional({
    example: 'root',
    description: "The actor's username now (absent when the account no longer exists)",
  })
  actorUsername?: string;
  @ApiProperty({ enum: AUDIT_ACTIONS, example: 'user.role' })
  action: AuditAction;
  @ApiProperty({ enum: TARGET_TYPES, example: 'user' })
  targetType: AuditTargetType;
  @ApiProperty({ example: '3f1c2d9e-2b9c-4f7e-9d0a-6c1b2a3d4e5f' })
  targetId: string;
  @ApiProperty({ format: 'uuid', nullable: true, type: String })
  roomId: string | null;
  @ApiProperty({ example: 'Moderates #support', description: 'Empty when none was given' })
  reason: string;
  @ApiProperty({
    type: 'object',
    additionalProperties: true,
    example: { from: 'user', to: 'admin' },
    description: 'Action-specific facts (old and new values, names)',
  })
  details: Record<string, unknown>;
  @ApiProperty({
    example: 'parlor-7c9f:1',
    description: 'The instance that recorded it (host:pid)',
  })
  instance: string;
}

export class AuditPageDto {
  @ApiProperty({ type: [AuditEntryDto], description: 'Newest first' })
  items: AuditEntryDto[];
  @ApiProperty({
    nullable: true,
    type: 'integer',
    description: 'Pass as `before` for the next (older) page; null on the last page',
  })
  nextCursor: number | null;
}
