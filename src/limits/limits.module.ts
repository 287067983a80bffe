import { Global, Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { CommandTracker } from './command-tracker';
import { HttpLimitsInterceptor } from './http-limits.interceptor';
import { RateLimitPolicy } from './rate-limit.policy';

/** Per-user limits shared by REST and the socket: rate buckets, in-flight caps, fair DB budget. */
@Global()
@Module({
  providers: [
    RateLimitPolicy,
    CommandTracker,
    // REST only: socket commands get the same limits from WsCommandRunner (src/chat/ws-ack.ts).
    { provide: APP_INTERCEPTOR, useClass: HttpLimitsInterceptor },
  ],
  exports: [RateLimitPolicy, CommandTracker],
})
export class LimitsModule {}
