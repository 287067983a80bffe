import type { MessageDto } from '../client/index';

/**
 * Whether a message counts as unread for `userId`: the server's rule (RoomStore's UNREAD), so
 * the badge counted from live events agrees with GET /rooms' `unreadCount`. One's own messages,
 * deleted ones and system notices ("bob joined") never count.
 */
export function countsAsUnread(m: MessageDto, userId: string): boolean {
  return (
    m.role !== 'system' && !m.deletedAt && !(m.author?.kind === 'user' && m.author.id === userId)
  );
}
