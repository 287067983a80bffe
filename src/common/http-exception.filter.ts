import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { Response } from 'express';
import { AppError, ErrorCode, HTTP_STATUS } from './errors';
import { isDatabaseUnavailable, isForeignKeyViolation, isUnstorableText } from './pg-errors';

const STATUS_CODES: Record<number, ErrorCode> = {
  400: ErrorCode.VALIDATION_FAILED,
  401: ErrorCode.UNAUTHORIZED,
  403: ErrorCode.FORBIDDEN,
  404: ErrorCode.NOT_FOUND,
  409: ErrorCode.CONFLICT,
  413: ErrorCode.PAYLOAD_TOO_LARGE,
  429: ErrorCode.RATE_LIMITED,
  503: ErrorCode.UNAVAILABLE,
};

/** Converts anything thrown into an AppError; unknown errors become INTERNAL without details. */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof HttpException) {
    const status = err.getStatus();
    const res = err.getResponse();
    const message =
      typeof res === 'object' && res && 'message' in res ? String(res.message) : err.message;
    const code = STATUS_CODES[status] ?? clientError(status);
    // 500s never leak internals, even when something upstream put them in the message.
    return new AppError(code, code === ErrorCode.INTERNAL ? 'Internal server error' : message);
  }
  // body-parser errors carry a status (413 too large, 400 malformed JSON, 415 bad charset).
  const status = (err as { status?: number; type?: string } | null)?.status;
  if (status === 413) return new AppError(ErrorCode.PAYLOAD_TOO_LARGE, 'Request body too large');
  if (status === 400) return AppError.invalid('Malformed request body');
  if (status === 415) return AppError.invalid('Unsupported request body encoding');
  // PostgreSQL refuses NUL (U+0000) in text: bad input, not a server fault.
  if (isUnstorableText(err)) {
    return AppError.invalid('Text contains a character that cannot be stored (U+0000)');
  }
  // A row it refers to was deleted between the checks and the write (a room deleted while a
  // ban or a follow of one of its messages was under way): as if it had come a moment later.
  if (isForeignKeyViolation(err))
    return new AppError(ErrorCode.NOT_FOUND, 'Not found (deleted meanwhile)');
  if (isDatabaseUnavailable(err)) {
    return new AppError(ErrorCode.UNAVAILABLE, 'Service temporarily unavailable', undefined, 1000);
  }
  return new AppError(ErrorCode.INTERNAL, 'Internal server error');
}

/** Any other 4xx (415 unsupported charset, 405, 414…) is the request's fault: not a 500. */
function clientError(status: number): ErrorCode {
  return status >= 400 && status < 500 ? ErrorCode.VALIDATION_FAILED : ErrorCode.INTERNAL;
}

/** The one HTTP error shape: `{ statusCode, code, message, details? }`. 500s never leak internals. */
@Catch()
export class HttpExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('HTTP');

  catch(exception: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    const error = toAppError(exception);
    const statusCode = HTTP_STATUS[error.code];
    if (error.code === ErrorCode.INTERNAL || error.code === ErrorCode.UNAVAILABLE) {
      this.logger.error({ msg: `Request failed: ${error.code}`, err: exception });
    }
    if (error.retryAfterMs !== undefined) {
      res.setHeader('Retry-After', String(Math.max(1, Math.ceil(error.retryAfterMs / 1000))));
    }
    res.status(statusCode).json({
      statusCode,
      code: error.code,
      message: error.message,
      ...(error.details !== undefined ? { details: error.details } : {}),
    });
  }
}
