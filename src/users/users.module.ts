import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { SessionStoreModule } from '../auth/session-store.module';
import { User } from './user.entity';
import { UserStore } from './user.store';
import { UsersController } from './users.controller';
import { UsersService } from './users.service';

@Module({
  imports: [TypeOrmModule.forFeature([User]), SessionStoreModule],
  controllers: [UsersController],
  providers: [UserStore, UsersService],
  exports: [UsersService],
})
export class UsersModule {}
