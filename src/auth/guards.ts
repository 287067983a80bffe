import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthGuard } from '@nestjs/passport';
import { ConfigService } from '@nestjs/config';
import type { Request } from 'express';
import type { Env } from '../config/env';
import { RateLimiter } from '../common/rate-limiter';
import { AppError, ErrorCode } from '../common/errors';
import type { Role } from '../users/user.entity';
import { normalizeLogin } from '../users/users.service';
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

/** Global, for REST: enforces @Roles(...) after authentication (refused on socket handlers). */
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
 * Login/signup/refresh/password-change throttling, answering 429 RATE_LIMITED with Retry-After:
 * - per client IP, whatever the account (AUTH_THROTTLE_IP_LIMIT);
 * - per (account, client IP) (AUTH_THROTTLE_USER_LIMIT): guessing one account's password from
 *   one address stops quickly, yet an attacker's few failures never lock the owner out, who
 *   signs in from another address. The account is named as the login looks it up
 *   (`normalizeLogin`: NFC, lower case; the lookup compares exactly that);
 * - per account from all addresses (AUTH_THROTTLE_ACCOUNT_LIMIT, much higher): caps guessing
 *   spread over many addresses.
 * The client IP is Express's req.ip: the peer address, or X-Forwarded-For when the peer is a
 * trusted proxy (TRUST_PROXY).
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
      // The route's pattern, not the path as typed: Express matches paths in any case.
      const route = (req.route as { path?: string } | undefined)?.path ?? req.path.toLowerCase();
      const account = `auth:${route}:user:${normalizeLogin(username)}`;
      checks.push(
        [`${account}:ip:${req.ip}`, this.config.get('AUTH_THROTTLE_USER_LIMIT', { infer: true })],
        [account, this.config.get('AUTH_THROTTLE_ACCOUNT_LIMIT', { infer: true })],
      );
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
