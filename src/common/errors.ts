import { HttpStatus } from '@nestjs/common';
import { ErrorCode } from './wire';

/** The one error vocabulary, defined with the wire shapes so the client package has it too. */
export { ErrorCode };

export const HTTP_STATUS: Record<ErrorCode, HttpStatus> = {
  [ErrorCode.UNAUTHORIZED]: HttpStatus.UNAUTHORIZED,
  [ErrorCode.TOKEN_EXPIRED]: HttpStatus.UNAUTHORIZED,
  [ErrorCode.FORBIDDEN]: HttpStatus.FORBIDDEN,
  [ErrorCode.NOT_FOUND]: HttpStatus.NOT_FOUND,
  [ErrorCode.VALIDATION_FAILED]: HttpStatus.BAD_REQUEST,
  [ErrorCode.CONFLICT]: HttpStatus.CONFLICT,
  [ErrorCode.RATE_LIMITED]: HttpStatus.TOO_MANY_REQUESTS,
  [ErrorCode.PAYLOAD_TOO_LARGE]: HttpStatus.PAYLOAD_TOO_LARGE,
  [ErrorCode.CONTENT_BLOCKED]: HttpStatus.UNPROCESSABLE_ENTITY,
  [ErrorCode.UNAVAILABLE]: HttpStatus.SERVICE_UNAVAILABLE,
  [ErrorCode.INTERNAL]: HttpStatus.INTERNAL_SERVER_ERROR,
  [ErrorCode.BUDGET_EXHAUSTED]: HttpStatus.TOO_MANY_REQUESTS,
};

/** The domain exception every service throws; the HTTP and WS filters map it to their shapes. */
export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }

  static notFound(what = 'Resource'): AppError {
    return new AppError(ErrorCode.NOT_FOUND, `${what} not found`);
  }
  static forbidden(message = 'Forbidden'): AppError {
    return new AppError(ErrorCode.FORBIDDEN, message);
  }
  static unauthorized(message = 'Authentication required'): AppError {
    return new AppError(ErrorCode.UNAUTHORIZED, message);
  }
  static conflict(message: string): AppError {
    return new AppError(ErrorCode.CONFLICT, message);
  }
  static invalid(message: string, details?: unknown): AppError {
    return new AppError(ErrorCode.VALIDATION_FAILED, message, details);
  }
}
