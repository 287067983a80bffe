/**
 * The sidebar's lists: group rooms, direct messages and conversations, with unread badges that
 * agree with the server's `unreadCount` and `unreadMentions` (GET /rooms), kept current from
 * live events by the server's own rule (unread.ts, mentions.ts).
 */
import type { MessageDto, ReadStateDto } from '../client/index';
import type { ConversationPageDto } from '../src/personas/dto/conversation.dto';
import type { RoomDto, RoomPageDto, RoomSummaryDto } from '../src/rooms/dto/room.dto';
import { $, h } from './dom';
import { mentionsMe } from './mentions';
import { closeRoom, openRoom } from './room-view';
import { isAdmin, me, state } from './state';
import { act } from './ui';
import { countsAsUnread } from './unread';

export async function loadRooms(): Promise<void> {
  const page = await state.session.api<RoomPageDto>('GET', '/rooms?limit=200');
  state.rooms.clear();
  for (const r of page.items) if (r.kind !== 'conversation') state.rooms.set(r.id, r);
  renderRooms();
}

export function upsertRoom(room: RoomSummaryDto): void {
  if (room.kind === 'conversation') return;
  state.rooms.set(room.id, { ...state.rooms.get(room.id), ...room });
  renderRooms();
}

export function removeRoom(roomId: string): void {
  state.rooms.delete(roomId);
  if (state.open?.id === roomId || state.screen?.roomId === roomId) closeRoom();
  else renderRooms();
}

/** A room's name as the list shows it: a direct room by the other person's name. */
export function roomLabel(r: Pick<RoomDto, 'kind' | 'name'>): string {
  if (r.kind !== 'direct') return r.name;
  const others = r.name.split(', ').filter((n) => n !== me().username);
  return others.length ? others.join(', ') : r.name;
}

/** Opens the direct room with a user (the server creates it on the first call). */
export async function startDirect(userId: string): Promise<void> {
  const room = await state.session.api<RoomDto>('POST', `/direct/${userId}`);
  const known = state.rooms.get(room.id);
  upsertRoom({
    unreadCount: 0,
    unreadMentions: 0,
    lastReadMessageId: 0,
    lastMessage: null,
    notify: 'default',
    ...known,
    ...room,
  });
  await openRoom(room.id, roomLabel(room));
}

/** A new message in a room not on screen: its badge counts it if the server would. */
export function countNew(m: MessageDto): void {
  const r = state.rooms.get(m.roomId);
  if (!r || !countsAsUnread(m, me().id)) return;
  const unreadMentions = r.unreadMentions + (mentionsMe(m) ? 1 : 0);
  upsertRoom({ ...r, unreadCount: r.unreadCount + 1, unreadMentions, lastMessage: m });
}

/** A message deleted in a room not on screen: no longer unread. */
export function uncountDeleted(m: MessageDto): void {
  const r = state.rooms.get(m.roomId);
  if (!r || state.open?.id === m.roomId || m.id <= r.lastReadMessageId || !r.unreadCount) return;
  if (!countsAsUnread({ ...m, deletedAt: null }, me().id)) return;
  const mentioned = mentionsMe({ ...m, deletedAt: null }) && r.unreadMentions > 0;
  upsertRoom({
    ...r,
    unreadCount: r.unreadCount - 1,
    unreadMentions: r.unreadMentions - (mentioned ? 1 : 0),
  });
}

/** The server's answer to read.mark: its count, not ours. */
export function markedRead(read: ReadStateDto): void {
  const r = state.rooms.get(read.roomId);
  if (r) upsertRoom({ ...r, ...read });
}

export function renderRooms(): void {
  const all = [...state.rooms.values()];
  $('#rooms').replaceChildren(...all.filter((r) => r.kind === 'group').map(roomItem));
  $('#directs').replaceChildren(...all.filter((r) => r.kind === 'direct').map(roomItem));
}

function roomItem(r: RoomSummaryDto): HTMLLIElement {
  const label = roomLabel(r);
  return h(
    'li',
    { class: r.id === state.open?.id ? 'active' : '', attrs: { 'data-room': label } },
    h(
      'button',
      { class: 'link', on: { click: () => void act(() => openRoom(r.id, label)) } },
      r.kind === 'direct' ? '@ ' : '# ',
      label,
    ),
    r.archivedAt && h('span', { class: 'meta', attrs: { 'data-testid': 'archived' } }, 'archived'),
    r.unreadMentions > 0 &&
      h(
        'span',
        {
          class: 'badge mention',
          title: 'Unread mentions of you',
          attrs: { 'data-testid': 'unread-mentions' },
        },
        `@${r.unreadMentions}`,
      ),
    r.unreadCount > 0 &&
      h('span', { class: 'badge', attrs: { 'data-testid': 'unread' } }, r.unreadCount),
    isAdmin() &&
      r.kind === 'group' &&
      h(
        'button',
        {
          class: 'danger',
          title: 'Delete room',
          on: {
            click: () =>
              confirm(`Delete room ${r.name} for everyone?`) &&
              void act(() => state.session.api('DELETE', `/rooms/${r.id}`)),
          },
        },
        '×',
      ),
  );
}

export async function loadConversations(): Promise<void> {
  const page = await state.session
    .api<ConversationPageDto>('GET', '/conversations')
    .catch(() => null);
  $('#conversations').replaceChildren(
    ...(page?.items ?? []).map((c) =>
      h(
        'li',
        { attrs: { 'data-conversation': c.title } },
        h(
          'button',
          { class: 'link', on: { click: () => void act(() => openRoom(c.id, c.title)) } },
          '✦ ',
          c.title,
        ),
        h(
          'button',
          {
            class: 'danger',
            title: 'Delete conversation',
            on: {
              click: () =>
                confirm(`Delete the conversation with ${c.title}?`) &&
                void act(async () => {
                  await state.session.api('DELETE', `/conversations/${c.id}`);
                  if (state.open?.id === c.id) closeRoom();
                  await loadConversations();
                }),
            },
          },
          '×',
        ),
      ),
    ),
  );
}
