import { Injectable, OnModuleDestroy } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { AuthUser } from '../auth/auth-user';
import type { Env } from '../config/env';
import { AppError } from '../common/errors';
import { type ChatServer, type ChatSocket, roomChannel } from './types';

/**
 * Typing is ephemeral: broadcast to the room's other sockets, throttled, and ended by itself
 * after TYPING_TIMEOUT_MS (or when the socket goes). Nothing is stored.
 */
@Injectable()
export class TypingService implements OnModuleDestroy {
  private server?: ChatServer;
  /** `socketId|roomId` → the timer that ends the indicator, and when it was last broadcast. */
  private readonly timers = new Map<string, { timer: NodeJS.Timeout; lastBroadcast: number }>();
  private readonly timeoutMs: number;
  private readonly throttleMs: number;

  constructor(config: ConfigService<Env, true>) {
    this.timeoutMs = config.get('TYPING_TIMEOUT_MS', { infer: true });
    this.throttleMs = config.get('TYPING_THROTTLE_MS', { infer: true });
  }

  attach(server: ChatServer): void {
    this.server = server;
  }

  /** Only sockets subscribed to the room (members) may type there. */
  typing(socket: ChatSocket, roomId: string, on: boolean): null {
    if (!socket.rooms.has(roomChannel(roomId))) throw AppError.notFound('Room');
    const key = `${socket.id}|${roomId}`;
    const current = this.timers.get(key);
    if (current) clearTimeout(current.timer);
    if (!on) {
      if (current) {
        this.timers.delete(key);
        this.emit(socket.data.user, roomId, false, socket);
      }
      return null;
    }
    const now = Date.now();
    const rebroadcast = !current || now - current.lastBroadcast >= this.throttleMs;
    if (rebroadcast) this.emit(socket.data.user, roomId, true, socket);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.emit(socket.data.user, roomId, false, socket);
    }, this.timeoutMs);
    this.timers.set(key, { timer, lastBroadcast: rebroadcast ? now : current.lastBroadcast });
    return null;
  }

  /** The socket went away: its indicators end now, not at their timeout. */
  socketGone(socketId: string, user: AuthUser): void {
    const prefix = `${socketId}|`;
    for (const [key, t] of this.timers) {
      if (key.startsWith(prefix)) {
        clearTimeout(t.timer);
        this.timers.delete(key);
        this.emit(user, key.slice(prefix.length), false);
      }
    }
  }

  onModuleDestroy(): void {
    for (const t of this.timers.values()) clearTimeout(t.timer);
  }

  private emit(user: AuthUser, roomId: string, typing: boolean, from?: ChatSocket): void {
    const payload = { roomId, userId: user.id, username: user.username, typing };
    if (from?.connected) from.to(roomChannel(roomId)).emit('typing', payload);
    else this.server?.to(roomChannel(roomId)).emit('typing', payload);
  }
}
