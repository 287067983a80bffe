/**
 * The signed-in layout: header (with the notifications bell), sidebar (rooms, direct messages,
 * conversations), main pane, the thread panel and the notification list.
 */
import type { ConversationDto } from '../src/personas/dto/conversation.dto';
import type { RoomDto } from '../src/rooms/dto/room.dto';
import { logout } from './app';
import { $, h } from './dom';
import { bell, notificationPanel } from './notifications';
import { showPersonas } from './personas';
import { openRoom } from './room-view';
import { loadConversations, upsertRoom } from './rooms';
import { isAdmin, me, state } from './state';
import { act, showHint, toggleSidebar } from './ui';

export function renderShell(): void {
  $('#app').replaceChildren(
    h(
      'header',
      {},
      h(
        'button',
        {
          class: 'menu',
          title: 'Rooms',
          attrs: { 'data-testid': 'sidebar-toggle', 'aria-controls': 'sidebar' },
          on: { click: toggleSidebar },
        },
        '☰',
      ),
      h('strong', {}, 'Parlor'),
      h('span', { attrs: { 'data-testid': 'me' } }, me().username, isAdmin() ? ' (admin)' : ''),
      h('span', { attrs: { id: 'conn' } }, 'connecting…'),
      bell(),
      h('button', { class: 'logout', on: { click: () => void logout() } }, 'Log out'),
    ),
    h(
      'div',
      { class: 'layout' },
      h(
        'aside',
        { attrs: { id: 'sidebar', 'data-testid': 'sidebar' } },
        h(
          'button',
          {
            class: 'link nav',
            attrs: { 'data-testid': 'nav-personas' },
            on: { click: () => void act(showPersonas) },
          },
          '✦ Personas',
        ),
        h('h2', {}, 'Rooms'),
        h('ul', { attrs: { id: 'rooms', 'data-testid': 'rooms' } }),
        isAdmin() && createRoomForm(),
        h('h2', {}, 'Direct messages'),
        h('ul', { attrs: { id: 'directs', 'data-testid': 'directs' } }),
        h('p', { class: 'hint small-print' }, 'Start one from a member of a room.'),
        h('h2', {}, 'Conversations'),
        h('ul', { attrs: { id: 'conversations' } }),
        talkToPersonaForm(),
      ),
      h('main', { attrs: { id: 'room' } }),
      h('section', {
        class: 'thread',
        attrs: { id: 'thread', 'data-testid': 'thread-panel', hidden: '' },
      }),
      notificationPanel(),
    ),
    h('p', { class: 'error', attrs: { id: 'error' } }),
  );
  showHint();
}

function createRoomForm(): HTMLFormElement {
  const name = h('input', { name: 'room-name', placeholder: 'new room name', required: true });
  const visibility = h(
    'select',
    { name: 'visibility' },
    h('option', {}, 'public'),
    h('option', {}, 'private'),
  );
  return h(
    'form',
    {
      attrs: { 'data-testid': 'create-room' },
      on: {
        submit: (ev) => {
          ev.preventDefault();
          void act(async () => {
            const room = await state.session.api<RoomDto>('POST', '/rooms', {
              name: name.value,
              visibility: visibility.value,
            });
            name.value = '';
            upsertRoom({
              ...room,
              unreadCount: 0,
              unreadMentions: 0,
              lastReadMessageId: 0,
              lastMessage: null,
              notify: 'default',
            });
          });
        },
      },
    },
    name,
    visibility,
    h('button', { type: 'submit' }, 'Create room'),
  );
}

function talkToPersonaForm(): HTMLFormElement {
  const select = h('select', { attrs: { id: 'persona-select' } });
  return h(
    'form',
    {
      on: {
        submit: (ev) => {
          ev.preventDefault();
          void act(() => startConversation(select.value));
        },
      },
    },
    select,
    h('button', { type: 'submit' }, 'Talk to persona'),
  );
}

/** A new private conversation with a persona, opened at once. */
export async function startConversation(personaId: string): Promise<void> {
  const c = await state.session.api<ConversationDto>('POST', '/conversations', { personaId });
  await loadConversations();
  await openRoom(c.id, c.title);
}
