import { Injectable, OnModuleDestroy } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { AccessPolicy } from '../access/access.policy';
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
  /**
   * `socketId|roomId` → the policy's answer on its way (see typing); `stopped` when a stop came
   * meanwhile, so the start it answers no longer shows.
   */
  private readonly checks = new Map<string, { answer: Promise<void>; stopped: boolean }>();
  private readonly timeoutMs: number;
  private readonly throttleMs: number;

  constructor(
    config: ConfigService<Env, true>,
    private readonly access: AccessPolicy,
  ) {
    this.timeoutMs = config.get('TYPING_TIMEOUT_MS', { infer: true });
    this.throttleMs = config.get('TYPING_THROTTLE_MS', { infer: true });
  }

  attach(server: ChatServer): void {
    this.server = server;
  }

  /**
   * Only sockets subscribed to the room (members) may type there, and only while they may
   * write: a muted member, or anyone in an archived room, is refused like a send. The check
   * reads current state once per broadcast (at most once per TYPING_THROTTLE_MS per socket and
   * room); a stop needs none.
   */
  async typing(socket: ChatSocket, roomId: string, on: boolean): Promise<null> {
    if (!socket.rooms.has(roomChannel(roomId))) throw AppError.notFound('Room');
    const key = `${socket.id}|${roomId}`;
    if (on && this.due(key)) {
      // A burst of starts shares one look at the policy.
      let check = this.checks.get(key);
      if (!check) {
        const answer = this.access.room(socket.data.user, roomId, 'write').then(() => undefined);
        const entry = { answer, stopped: false };
        this.checks.set(key, entry);
        void answer.then(
          () => this.checks.delete(key),
          () => this.checks.delete(key),
        );
        check = entry;
      }
      await check.answer;
      if (!socket.rooms.has(roomChannel(roomId))) throw AppError.notFound('Room'); // left meanwhile
      if (check.stopped) return null; // "stop" came while the policy looked: nothing to show
    } else if (!on) {
      const pending = this.checks.get(key);
      if (pending) pending.stopped = true;
    }
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

  private due(key: string): boolean {
    const current = this.timers.get(key);
    return !current || Date.now() - current.lastBroadcast >= this.throttleMs;
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
