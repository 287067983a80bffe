import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthGuard } from '@nestjs/passport';
import { ConfigService } from '@nestjs/config';
import type { Request } from 'express';
import type { Env } from '../config/env';
import { RateLimiter } from '../common/rate-limiter';
import { AppError, ErrorCode } from '../common/errors';
import type { Role } from '../users/user.entity';
import type { AuthUser } from './auth-user';
import { IS_PUBLIC, ROLES } from './decorators';

/** Global and deny-by-default: every route needs a valid access token unless marked @Public(). */
@Injectable()
export class JwtAuthGuard extends AuthGuard('jwt') {
  constructor(private readonly reflector: Reflector) {
    super();
  }

  override canActivate(ctx: ExecutionContext) {
    if (ctx.getType() !== 'http') return true; // sockets authenticate in the handshake
    const isPublic = this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, [
      ctx.getHandler(),
      ctx.getClass(),
    ]);
    return isPublic ? true : super.canActivate(ctx);
  }

  override handleRequest<T = AuthUser>(err: unknown, user: T | false, info: unknown): T {
    if (err) throw err as Error; // whatever the strategy's validate() threw (an AppError)
    if (!user) {
      if ((info as Error | undefined)?.name === 'TokenExpiredError') {
        throw new AppError(ErrorCode.TOKEN_EXPIRED, 'Token has expired');
      }
      throw AppError.unauthorized(
        info instanceof Error && /No auth token/.test(info.message)
          ? 'Authentication required'
          : 'Invalid token',
      );
    }
    return user;
  }
}

/** Global: enforces @Roles(...) after authentication. */
@Injectable()
export class RolesGuard implements CanActivate {
  constructor(private readonly reflector: Reflector) {}

  canActivate(ctx: ExecutionContext): boolean {
    const roles = this.reflector.getAllAndOverride<Role[] | undefined>(ROLES, [
      ctx.getHandler(),
      ctx.getClass(),
    ]);
    if (!roles?.length || ctx.getType() !== 'http') return true;
    const user = ctx.switchToHttp().getRequest<{ user?: AuthUser }>().user;
    if (!user || !roles.includes(user.role))
      throw AppError.forbidden('Requires role: ' + roles.join(' or '));
    return true;
  }
}

/**
 * Login/signup/refresh throttling: per IP, and per username whatever the IP (slows password
 * guessing spread over many addresses). Answers 429 RATE_LIMITED with Retry-After.
 */
@Injectable()
export class AuthThrottleGuard implements CanActivate {
  constructor(
    private readonly limiter: RateLimiter,
    private readonly config: ConfigService<Env, true>,
  ) {}

  canActivate(ctx: ExecutionContext): boolean {
    const req = ctx.switchToHttp().getRequest<Request>();
    const windowMs = this.config.get('AUTH_THROTTLE_TTL', { infer: true }) * 1000;
    // Signup/login name the account in the body; a signed-in route (password change) by its user.
    const username =
      (req.body as { username?: unknown } | undefined)?.username ??
      (req.user as AuthUser | undefined)?.username;
    const checks: [string, number][] = [
      [`auth:ip:${req.ip}`, this.config.get('AUTH_THROTTLE_IP_LIMIT', { infer: true })],
    ];
    if (typeof username === 'string') {
      checks.push([
        `auth:${req.path}:user:${username.toLowerCase()}`,
        this.config.get('AUTH_THROTTLE_USER_LIMIT', { infer: true }),
      ]);
    }
    for (const [key, limit] of checks) {
      const { allowed, retryAfterMs } = this.limiter.hit(key, limit, windowMs);
      if (!allowed)
        throw new AppError(
          ErrorCode.RATE_LIMITED,
          'Too many attempts; try again later',
          undefined,
          retryAfterMs,
        );
    }
    return true;
  }
}
