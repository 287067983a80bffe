import { Module } from '@nestjs/common';
import { MessageStoreModule } from '../messages/message-store.module';
import { UsersModule } from '../users/users.module';
import { RoomStoreModule } from './room-store.module';
import { RoomsController } from './rooms.controller';
import { RoomsService } from './rooms.service';

@Module({
  imports: [RoomStoreModule, MessageStoreModule, UsersModule],
  controllers: [RoomsController],
  providers: [RoomsService],
  exports: [RoomsService],
})
export class RoomsModule {}
