import {
  ConnectedSocket,
  MessageBody,
  OnGatewayConnection,
  OnGatewayDisconnect,
  OnGatewayInit,
  SubscribeMessage,
  WebSocketGateway,
} from '@nestjs/websockets';
import { ErrorCode } from '../common/errors';
import { toAppError } from '../common/http-exception.filter';
import { NotDbBound, RateLimit } from '../limits/limits.decorators';
import { MessagesService } from '../messages/messages.service';
import { NotificationsService } from '../notifications/notifications.service';
import { PersonasService } from '../personas/personas.service';
import { RoomsService } from '../rooms/rooms.service';
import { ReportsService } from '../moderation/reports.service';
import { ChatBroadcaster } from './chat.broadcaster';
import { ChatService } from './chat.service';
import {
  AuthRefreshPayload,
  HistoryFetchPayload,
  ThreadFetchPayload,
  MessageDeletePayload,
  MessageEditPayload,
  MessageReportPayload,
  MessageSendPayload,
  NotificationReadPayload,
  PersonaCancelPayload,
  ReactionPayload,
  ReadMarkPayload,
  RoomJoinPayload,
  RoomPayload,
} from './dto';
import { SocketSessionsService } from './socket-sessions.service';
import { TypingService } from './typing.service';
import type { ChatServer, ChatSocket } from './types';

/**
 * The Socket.IO door to the same services REST uses. Handlers delegate (the adapter's dispatcher
 * validates each payload against the handler's DTO first: `gatewayCommands` in ws-ack.ts); the
 * handshake is authenticated in middleware, so an unauthenticated socket never connects.
 * Writes name their bucket of the per-user rate-limit policy (`@RateLimit`, the same bucket as
 * their REST twin); WsCommandRunner (src/chat/ws-ack.ts), called by the adapter's dispatcher,
 * applies it with the other per-user limits and wraps each result in its ack.
 */
@WebSocketGateway()
export class ChatGateway
  implements
    OnGatewayInit<ChatServer>,
    OnGatewayConnection<ChatSocket>,
    OnGatewayDisconnect<ChatSocket>
{
  constructor(
    private readonly chat: ChatService,
    private readonly sessions: SocketSessionsService,
    private readonly typing: TypingService,
    private readonly broadcaster: ChatBroadcaster,
    private readonly rooms: RoomsService,
    private readonly notifications: NotificationsService,
    private readonly messages: MessagesService,
    private readonly personas: PersonasService,
    private readonly reports: ReportsService,
  ) {}

  afterInit(server: ChatServer): void {
    this.sessions.attach(server);
    this.typing.attach(server);
    this.broadcaster.attach(server);
    server.use((socket, next) => {
      this.sessions.authenticate(socket).then(
        () => next(),
        (err: unknown) => {
          const e = toAppError(err);
          // UNAVAILABLE (database down, shutting down) is not the token's fault: a client that
          // saw UNAUTHORIZED would drop a good token and send its user to the login screen.
          const passThrough = [
            ErrorCode.TOKEN_EXPIRED,
            ErrorCode.RATE_LIMITED,
            ErrorCode.UNAVAILABLE,
          ];
          const code = passThrough.includes(e.code) ? e.code : ErrorCode.UNAUTHORIZED;
          next(Object.assign(new Error(e.message), { data: { code, message: e.message } }));
        },
      );
    });
  }

  handleConnection(socket: ChatSocket): void {
    this.sessions.connected(socket);
  }

  handleDisconnect(socket: ChatSocket): Promise<void> {
    return this.sessions.disconnected(socket);
  }

  /** Counted in the `rooms` bucket only when it joins the membership (see ChatService.join). */
  @SubscribeMessage('room.join')
  join(@ConnectedSocket() s: ChatSocket, @MessageBody() dto: RoomJoinPayload) {
    return this.chat.join(s, dto);
  }

  @SubscribeMessage('room.leave')
  @RateLimit('rooms')
  leave(@ConnectedSocket() s: ChatSocket, @MessageBody() dto: RoomPayload) {
    return this.chat.leave(s, dto.roomId);
  }

  @SubscribeMessage('message.send')
  @RateLimit('send')
  @NotDbBound()
  send(@ConnectedSocket() s: ChatSocket, @MessageBody() dto: MessageSendPayload) {
    return this.chat.send(s, dto);
  }

  @SubscribeMessage('message.edit')
  @RateLimit('edit')
  edit(@ConnectedSocket() s: ChatSocket, @MessageBody() dto: MessageEditPayload) {
    return this.messages.edit(s.data.user, dto.messageId, dto.content);
  }

  @SubscribeMessage('message.delete')
  @RateLimit('edit')
  remove(@ConnectedSocket() s: ChatSocket, @MessageBody() dto: MessageDeletePayload) {
    return this.messages.remove(s.data.user, dto.messageId, dto.reason);
  }

  @SubscribeMessage('message.report')
  @RateLimit('report')
  report(@ConnectedSocket() s: ChatSocket, @MessageBody() dto: MessageReportPayload) {
    return this.reports.create(s.data.user, dto.messageId, dto);
  }

  @SubscribeMessage('reaction.add')
  @RateLimit('react')
  react(@ConnectedSocket() s: ChatSocket, @MessageBody() dto: ReactionPayload) {
    return this.messages.react(s.data.user, dto.messageId, dto.emoji, true);
  }

  @SubscribeMessage('reaction.remove')
  @RateLimit('react')
  unreact(@ConnectedSocket() s: ChatSocket, @MessageBody() dto: ReactionPayload) {
    return this.messages.react(s.data.user, dto.messageId, dto.emoji, false);
  }

  @SubscribeMessage('typing.start')
  @RateLimit('typing')
  @NotDbBound()
  typingStart(@ConnectedSocket() s: ChatSocket, @MessageBody() dto: RoomPayload) {
    return this.typing.typing(s, dto.roomId, true);
  }

  @SubscribeMessage('typing.stop')
  @RateLimit('typing')
  @NotDbBound()
  typingStop(@ConnectedSocket() s: ChatSocket, @MessageBody() dto: RoomPayload) {
    return this.typing.typing(s, dto.roomId, false);
  }

  @SubscribeMessage('read.mark')
  @RateLimit('read')
  markRead(@ConnectedSocket() s: ChatSocket, @MessageBody() dto: ReadMarkPayload) {
    return this.rooms.markRead(s.data.user, dto.roomId, dto.messageId);
  }

  @SubscribeMessage('notification.read')
  @RateLimit('read')
  readNotifications(@ConnectedSocket() s: ChatSocket, @MessageBody() dto: NotificationReadPayload) {
    return this.notifications.read(s.data.user, dto);
  }

  @SubscribeMessage('history.fetch')
  history(
    @ConnectedSocket() s: ChatSocket,
    @MessageBody() { roomId, limit, ...cursors }: HistoryFetchPayload,
  ) {
    return this.messages.history(s.data.user, roomId, { ...cursors, limit: limit ?? 50 });
  }

  @SubscribeMessage('thread.fetch')
  thread(@ConnectedSocket() s: ChatSocket, @MessageBody() dto: ThreadFetchPayload) {
    return this.messages.thread(s.data.user, dto.messageId, { ...dto, limit: dto.limit ?? 50 });
  }

  @SubscribeMessage('persona.cancel')
  cancelPersona(@ConnectedSocket() s: ChatSocket, @MessageBody() dto: PersonaCancelPayload) {
    return this.personas.cancel(s.data.user, dto.messageId);
  }

  @SubscribeMessage('auth.refresh')
  @RateLimit('refresh')
  refresh(@ConnectedSocket() s: ChatSocket, @MessageBody() dto: AuthRefreshPayload) {
    return this.sessions.refresh(s, dto.accessToken);
  }
}
