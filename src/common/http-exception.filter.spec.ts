import { jest } from '@jest/globals';
import { HttpException, Logger } from '@nestjs/common';
import type { ArgumentsHost } from '@nestjs/common';
import { AppError, ErrorCode } from './errors';
import { HttpExceptionFilter } from './http-exception.filter';

/** Runs the filter on one exception and returns what the client would receive. */
function answer(exception: unknown) {
  const sent: { status?: number; body?: unknown; headers: Record<string, string> } = {
    headers: {},
  };
  const res = {
    setHeader: (k: string, v: string) => (sent.headers[k] = v),
    status(code: number) {
      sent.status = code;
      return this;
    },
    json: (body: unknown) => (sent.body = body),
  };
  const host = { switchToHttp: () => ({ getResponse: () => res }) } as unknown as ArgumentsHost;
  new HttpExceptionFilter().catch(exception, host);
  return sent;
}

describe('HttpExceptionFilter: one error shape, no internals', () => {
  beforeAll(() => jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined));

  it('an unexpected error is a bare 500: no message, stack, SQL or driver detail leaks', () => {
    const err = Object.assign(new Error('relation "users" violates constraint users_pkey'), {
      query: 'INSERT INTO users …',
      detail: 'Key (id)=(42) already exists.',
    });
    const sent = answer(err);
    expect(sent.status).toBe(500);
    expect(sent.body).toEqual({
      statusCode: 500,
      code: ErrorCode.INTERNAL,
      message: 'Internal server error',
    });
    expect(JSON.stringify(sent.body)).not.toMatch(/users|INSERT|Key|at /);
  });

  it('a database that is down is 503 UNAVAILABLE with Retry-After', () => {
    const sent = answer(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    expect(sent.status).toBe(503);
    expect(sent.body).toMatchObject({ code: ErrorCode.UNAVAILABLE });
    expect(sent.headers['Retry-After']).toBe('1');
  });

  it('a row deleted between the checks and the write (a foreign key violation) is 404, detail-free', () => {
    const err = Object.assign(new Error('insert on "room_bans" violates foreign key constraint'), {
      code: '23503',
      detail: 'Key (room_id)=(…) is not present in table "rooms".',
    });
    const sent = answer(err);
    expect(sent.status).toBe(404);
    expect(sent.body).toMatchObject({ code: ErrorCode.NOT_FOUND });
    expect(JSON.stringify(sent.body)).not.toMatch(/room_bans|rooms|Key/);
  });

  it('domain errors keep their code, message and details; Nest 4xx map to the vocabulary', () => {
    expect(answer(AppError.invalid('Validation failed', { name: ['too long'] })).body).toEqual({
      statusCode: 400,
      code: ErrorCode.VALIDATION_FAILED,
      message: 'Validation failed',
      details: { name: ['too long'] },
    });
    expect(answer(AppError.notFound('Room')).status).toBe(404);
    expect(answer(new HttpException('gone', 405)).body).toMatchObject({
      statusCode: 400,
      code: ErrorCode.VALIDATION_FAILED,
    });
  });
});
