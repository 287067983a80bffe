import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Message, MessageEdit, Reaction } from './message.entity';
import { MessageMention, ThreadFollow } from './thread.entity';
import { MessageStore } from './message-store';
import { MessageWriter } from './message-writer';
import { SearchIndexCleaner } from './search-index-cleaner';

/**
 * The messages tables and the one writer of notices and persona replies, on their own, so rooms
 * and personas can post messages without a cycle through MessagesService.
 */
@Module({
  imports: [
    TypeOrmModule.forFeature([Message, MessageEdit, Reaction, MessageMention, ThreadFollow]),
  ],
  providers: [MessageStore, MessageWriter, SearchIndexCleaner],
  exports: [MessageStore, MessageWriter],
})
export class MessageStoreModule {}
