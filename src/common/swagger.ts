import { applyDecorators } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional, ApiResponse } from '@nestjs/swagger';
import { ErrorCode } from './errors';

export class ErrorResponseDto {
  @ApiProperty({ example: 400 })
  statusCode: number;
  @ApiProperty({ enum: ErrorCode, example: ErrorCode.VALIDATION_FAILED })
  code: ErrorCode;
  @ApiProperty({ example: 'Validation failed' })
  message: string;
  @ApiPropertyOptional({
    example: { password: ['password must be longer than or equal to 8 characters'] },
    description:
      'Per-field messages for validation errors; `{ reason, until }` for refusals by a mute or a ban',
  })
  details?: Record<string, string[]>;
}

const DESCRIPTIONS: Record<number, [ErrorCode, string]> = {
  400: [ErrorCode.VALIDATION_FAILED, 'Invalid input (per-field details)'],
  401: [ErrorCode.UNAUTHORIZED, 'Missing, invalid, expired or revoked token'],
  403: [ErrorCode.FORBIDDEN, 'Not allowed for this user'],
  404: [ErrorCode.NOT_FOUND, 'Not found (or not visible to you)'],
  409: [ErrorCode.CONFLICT, 'Conflicts with existing state'],
  413: [ErrorCode.PAYLOAD_TOO_LARGE, 'Body too large'],
  422: [ErrorCode.CONTENT_BLOCKED, 'A word filter blocked the text (details name the rule)'],
  429: [ErrorCode.RATE_LIMITED, 'Too many requests; see Retry-After'],
  503: [ErrorCode.UNAVAILABLE, 'Not available on this server'],
};

/** A route's own wording of an error (`[401, 'Wrong username or password']`). */
export type ErrorDoc = number | [status: number, description: string, message?: string];

/**
 * Documents the error responses of a route with the one error shape. A status alone takes the
 * generic description; `[status, description, message?]` says what it means on this route
 * (and the `message` the server really sends, for the example).
 */
export function ApiErrors(...statuses: ErrorDoc[]): MethodDecorator & ClassDecorator {
  return applyDecorators(
    ...statuses.map((doc) => {
      const [status, description, message] =
        typeof doc === 'number' ? [doc, DESCRIPTIONS[doc][1]] : doc;
      return ApiResponse({
        status,
        description,
        type: ErrorResponseDto,
        example: {
          statusCode: status,
          code: DESCRIPTIONS[status][0],
          message: message ?? description,
        },
      });
    }),
  );
}
