import { Global, Module } from '@nestjs/common';
import { DomainEvents } from './domain-events';
import { RateLimiter } from './rate-limiter';

@Global()
@Module({ providers: [DomainEvents, RateLimiter], exports: [DomainEvents, RateLimiter] })
export class CommonModule {}
