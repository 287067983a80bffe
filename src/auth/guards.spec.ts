import type { ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AppError, ErrorCode } from '../common/errors';
import type { AuthUser } from './auth-user';
import { IS_PUBLIC, ROLES } from './decorators';
import { JwtAuthGuard, RolesGuard } from './guards';

function httpContext(
  user: Partial<AuthUser> | undefined,
  meta: Record<string, unknown> = {},
): { ctx: ExecutionContext; reflector: Reflector } {
  const handler = () => undefined;
  const cls = class {};
  const reflector = new Reflector();
  for (const [key, value] of Object.entries(meta)) Reflect.defineMetadata(key, value, handler);
  const ctx = {
    getType: () => 'http',
    getHandler: () => handler,
    getClass: () => cls,
    switchToHttp: () => ({ getRequest: () => ({ user }) }),
  } as unknown as ExecutionContext;
  return { ctx, reflector };
}

const codeOf = (fn: () => unknown): ErrorCode | undefined => {
  try {
    fn();
  } catch (err) {
    return err instanceof AppError ? err.code : undefined;
  }
  return undefined;
};

describe('RolesGuard', () => {
  it('lets any authenticated user through a route without @Roles', () => {
    const { ctx, reflector } = httpContext({ role: 'user' });
    expect(new RolesGuard(reflector).canActivate(ctx)).toBe(true);
  });

  it('allows the listed role and refuses others with FORBIDDEN', () => {
    const admin = httpContext({ role: 'admin' }, { [ROLES]: ['admin'] });
    expect(new RolesGuard(admin.reflector).canActivate(admin.ctx)).toBe(true);
    const user = httpContext({ role: 'user' }, { [ROLES]: ['admin'] });
    expect(codeOf(() => new RolesGuard(user.reflector).canActivate(user.ctx))).toBe(
      ErrorCode.FORBIDDEN,
    );
    const anonymous = httpContext(undefined, { [ROLES]: ['admin'] });
    expect(codeOf(() => new RolesGuard(anonymous.reflector).canActivate(anonymous.ctx))).toBe(
      ErrorCode.FORBIDDEN,
    );
  });
});

describe('JwtAuthGuard', () => {
  it('lets @Public() routes through without a token', async () => {
    const { ctx, reflector } = httpContext(undefined, { [IS_PUBLIC]: true });
    expect(await new JwtAuthGuard(reflector).canActivate(ctx)).toBe(true);
  });

  it('maps passport outcomes to the error vocabulary', () => {
    const guard = new JwtAuthGuard(new Reflector());
    const expired = Object.assign(new Error('jwt expired'), { name: 'TokenExpiredError' });
    expect(codeOf(() => guard.handleRequest(null, false, expired))).toBe(ErrorCode.TOKEN_EXPIRED);
    expect(codeOf(() => guard.handleRequest(null, false, new Error('No auth token')))).toBe(
      ErrorCode.UNAUTHORIZED,
    );
    expect(codeOf(() => guard.handleRequest(null, false, new Error('invalid signature')))).toBe(
      ErrorCode.UNAUTHORIZED,
    );
    const revoked = AppError.unauthorized('Session has ended');
    expect(() => guard.handleRequest(revoked, false, undefined)).toThrow(revoked);
    const user = { id: 'u1' };
    expect(guard.handleRequest(null, user, undefined)).toBe(user);
  });
});
