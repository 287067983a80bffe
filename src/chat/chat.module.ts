import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { MessagesModule } from '../messages/messages.module';
import { PersonasModule } from '../personas/personas.module';
import { RoomsModule } from '../rooms/rooms.module';
import { ChatBroadcaster } from './chat.broadcaster';
import { ChatGateway } from './chat.gateway';
import { ChatService } from './chat.service';
import { PresenceService } from './presence.service';
import { SocketSessionsService } from './socket-sessions.service';
import { TypingService } from './typing.service';

@Module({
  imports: [AuthModule, RoomsModule, MessagesModule, PersonasModule],
  providers: [
    ChatGateway,
    ChatService,
    SocketSessionsService,
    TypingService,
    ChatBroadcaster,
    PresenceService,
  ],
})
export class ChatModule {}
