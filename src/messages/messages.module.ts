import { Module } from '@nestjs/common';
import { RoomSettingsModule } from '../moderation/room-settings.module';
import { RoomsModule } from '../rooms/rooms.module';
import { MessageStoreModule } from './message-store.module';
import { MessagesController } from './messages.controller';
import { MessagesService } from './messages.service';
import { MentionsService } from './mentions.service';
import { RoomStoreModule } from '../rooms/room-store.module';
import { AttachmentStoreModule } from '../attachments/attachment-store.module';

@Module({
  imports: [
    MessageStoreModule,
    RoomsModule,
    RoomStoreModule,
    RoomSettingsModule,
    AttachmentStoreModule,
  ],
  controllers: [MessagesController],
  providers: [MessagesService, MentionsService],
  exports: [MessagesService, MentionsService, MessageStoreModule],
})
export class MessagesModule {}
