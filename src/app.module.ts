import { DynamicModule, Module } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { EventEmitterModule } from '@nestjs/event-emitter';
import { AccessModule } from './access/access.module';
import { AttachmentsModule } from './attachments/attachments.module';
import { AuditModule } from './audit/audit.module';
import { AuthModule } from './auth/auth.module';
import { ChatModule } from './chat/chat.module';

import { CommonModule } from './common/common.module';
import { EventsModule } from './events/events.module';
import { validateEnv } from './config/env';
import { DatabaseModule } from './database/database.module';
import { HealthModule } from './health/health.module';
import { LimitsModule } from './limits/limits.module';
import { MetricsModule } from './metrics/metrics.module';
import { RedisModule } from './redis/redis.module';

import { MessagesModule } from './messages/messages.module';
import { ModerationModule } from './moderation/moderation.module';
import { NotificationsModule } from './notifications/notifications.module';
import { PersonasModule } from './personas/personas.module';
import { PushModule } from './push/push.module';
import { RoomsModule } from './rooms/rooms.module';
import { UsersModule } from './users/users.module';

/**
 * The application. `overrides` lets tests boot several apps with different settings in one
 * process; production passes none and reads the environment (and an optional `.env`).
 */
@Module({})
export class AppModule {
  static register(overrides: Record<string, string> = {}): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot({
          isGlobal: true,
          validate: (raw) => validateEnv({ ...raw, ...overrides }),
          // Only validated values: an unset optional variable never falls back to process.env.
          skipProcessEnv: true,
          cache: true,
        }),
        EventEmitterModule.forRoot(),
        CommonModule,
        EventsModule,
        RedisModule,
        LimitsModule,
        DatabaseModule,
        AccessModule,
        AuditModule,
        UsersModule,
        AuthModule,
        RoomsModule,
        MessagesModule,
        AttachmentsModule,
        PersonasModule,
        ModerationModule,
        PushModule,
        NotificationsModule,
        ChatModule,
        HealthModule,
        MetricsModule,
      ],
    };
  }
}
