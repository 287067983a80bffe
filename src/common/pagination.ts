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
