import { Module } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { APP_GUARD } from '@nestjs/core';
import { JwtModule } from '@nestjs/jwt';
import { PassportModule } from '@nestjs/passport';
import { UsersModule } from '../users/users.module';
import { AuthController } from './auth.controller';
import { AuthService } from './auth.service';
import { AuthThrottleGuard, JwtAuthGuard, RolesGuard } from './guards';
import { JWT_SETTINGS, jwtSettings } from './jwt-settings';
import { JwtStrategy } from './jwt.strategy';
import { SessionStoreModule } from './session-store.module';

@Module({
  imports: [UsersModule, PassportModule, JwtModule.register({}), SessionStoreModule],
  controllers: [AuthController],
  providers: [
    AuthService,
    JwtStrategy,
    AuthThrottleGuard,
    { provide: JWT_SETTINGS, inject: [ConfigService], useFactory: jwtSettings },
    // REST only: socket commands do not run global guards (the handshake authenticates them;
    // src/chat/ws-ack.ts, gatewayCommands).
    { provide: APP_GUARD, useClass: JwtAuthGuard },
    { provide: APP_GUARD, useClass: RolesGuard },
  ],
  exports: [AuthService],
})
export class AuthModule {}
