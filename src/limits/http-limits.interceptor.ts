import { CallHandler, ExecutionContext, Injectable, NestInterceptor } from '@nestjs/common';
import type { Request } from 'express';
import { from, lastValueFrom, type Observable } from 'rxjs';
import type { AuthUser } from '../auth/auth-user';
import { CommandTracker } from './command-tracker';
import { commandLimitsOf } from './limits.decorators';

/**
 * REST's door to the same limits as socket commands (CommandTracker): every authenticated
 * request counts towards its user's in-flight cap, is rate-limited by its route's bucket, and
 * waits its turn for the fair database budget. Anonymous requests (login, signup, health) pass.
 */
@Injectable()
export class HttpLimitsInterceptor implements NestInterceptor {
  constructor(private readonly tracker: CommandTracker) {}

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (ctx.getType() !== 'http') return next.handle();
    const user = ctx.switchToHttp().getRequest<Request & { user?: AuthUser }>().user;
    if (!user) return next.handle();
    const limits = commandLimitsOf(ctx.getHandler());
    return from(
      this.tracker.run(user.id, undefined, limits, () =>
        lastValueFrom(next.handle(), { defaultValue: undefined }),
      ),
    );
  }
}
