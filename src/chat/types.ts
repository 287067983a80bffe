import type { Server, Socket } from 'socket.io';
import type { AuthUser } from '../auth/auth-user';
import type { ClientToServer, ServerToClient } from './contract';

export interface SocketData {
  user: AuthUser;
  /** The access token the socket holds now: the handshake's, or the latest `auth.refresh`. */
  token: string;
  /** When that access token expires (ms since epoch). */
  expiresAt: number;
  /** This socket brought the user online (first socket anywhere); announced after `connect`. */
  cameOnline: boolean;
  /** The socket holds one of its user's WS_MAX_SOCKETS_PER_USER slots (given back once). */
  slotHeld: boolean;
  /** The handshake completed and `connection` was handled (disconnect handling applies). */
  live: boolean;
  /** The socket's latest `auth.refresh` (they run one after another). */
  refreshing?: Promise<unknown>;
}

export type ChatServer = Server<ClientToServer, ServerToClient, Record<string, never>, SocketData>;
export type ChatSocket = Socket<ClientToServer, ServerToClient, Record<string, never>, SocketData>;

/** Socket.IO room names: one per chat room, one per user (all tabs), one per session. */
export const ROOM_PREFIX = 'room:';
export const roomChannel = (roomId: string) => `${ROOM_PREFIX}${roomId}`;
export const userChannel = (userId: string) => `user:${userId}`;
export const sessionChannel = (sessionId: string) => `session:${sessionId}`;
