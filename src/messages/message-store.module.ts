import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Message, MessageEdit, Reaction } from './message.entity';
import { MessageStore } from './message-store';

/** The messages tables on their own, so RoomsService can write system messages without a cycle. */
@Module({
  imports: [TypeOrmModule.forFeature([Message, MessageEdit, Reaction])],
  providers: [MessageStore],
  exports: [MessageStore],
})
export class MessageStoreModule {}
