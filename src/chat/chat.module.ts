import { Global, Module } from '@nestjs/common';
import { Presence } from '../common/presence';
import { AuthModule } from '../auth/auth.module';
import { MessagesModule } from '../messages/messages.module';
import { ModerationModule } from '../moderation/moderation.module';
import { NotificationsModule } from '../notifications/notifications.module';
import { PersonasModule } from '../personas/personas.module';
import { RoomsModule } from '../rooms/rooms.module';
import { ChatBroadcaster } from './chat.broadcaster';
import { ChatGateway } from './chat.gateway';
import { ChatService } from './chat.service';
import { PresenceService } from './presence.service';
import { SocketSessionsService } from './socket-sessions.service';
import { TypingService } from './typing.service';

/** Global only for `Presence` (who is online), which features outside src/chat may ask. */
@Global()
@Module({
  imports: [
    AuthModule,
    RoomsModule,
    MessagesModule,
    PersonasModule,
    ModerationModule,
    NotificationsModule,
  ],
  providers: [
    ChatGateway,
    ChatService,
    SocketSessionsService,
    TypingService,
    ChatBroadcaster,
    PresenceService,
    { provide: Presence, useExisting: PresenceService },
  ],
  exports: [Presence],
})
export class ChatModule {}
