import { Global, Module } from '@nestjs/common';
import { DomainEvents } from './domain-events';

/** Domain events, available to every module (services emit; the chat module listens). */
@Global()
@Module({ providers: [DomainEvents], exports: [DomainEvents] })
export class EventsModule {}
