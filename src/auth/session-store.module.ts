import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Session } from './session.entity';
import { SessionStore } from './session.store';

/** The sessions table on its own, so UsersService can end a user's sessions without a cycle. */
@Module({
  imports: [TypeOrmModule.forFeature([Session])],
  providers: [SessionStore],
  exports: [SessionStore],
})
export class SessionStoreModule {}
