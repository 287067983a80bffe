import { applyDecorators } from '@nestjs/common';
import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, Max, Min } from 'class-validator';

/**
 * A page size query field: optional integer 1..max (the default is the field's initialiser).
 * One definition for every paginated route and socket command.
 */
export function PageLimit(max: number, byDefault?: number): PropertyDecorator {
  return applyDecorators(
    ApiPropertyOptional({ minimum: 1, maximum: max, ...(byDefault ? { default: byDefault } : {}) }),
    IsOptional(),
    Type(() => Number),
    IsInt(),
    Min(1),
    Max(max),
  );
}

/**
 * `<activity>_<uuid>` keyset cursors (rooms, conversations): a message id of at most 16 digits
 * and a strict UUID (8-4-4-4-12 hex), so nothing that passes reaches PostgreSQL as an invalid
 * uuid (a 500) — "1_------------------------------------" is a 400.
 */
export const ACTIVITY_CURSOR =
  /^\d{1,16}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
