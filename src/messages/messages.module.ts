import { Module } from '@nestjs/common';
import { RoomsModule } from '../rooms/rooms.module';
import { MessageStoreModule } from './message-store.module';
import { MessagesController } from './messages.controller';
import { MessagesService } from './messages.service';

@Module({
  imports: [MessageStoreModule, RoomsModule],
  controllers: [MessagesController],
  providers: [MessagesService],
  exports: [MessagesService, MessageStoreModule],
})
export class MessagesModule {}
