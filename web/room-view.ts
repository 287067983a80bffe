/**
 * The open room: its head (members, presence, archived and slow-mode badges, the reports queue
 * for moderators), history paging, the read marker.
 */
import type { MessageDto } from '../client/index';
import type { ReportPageDto } from '../src/moderation/dto/report.dto';
import { composer, renderComposerState } from './composer';
import { $, h } from './dom';
import { clearEarlyStreamEvents, renderMessage, resumeStreams, showMessage } from './messages';
import {
  mayModerate,
  memberMarks,
  mutedNow,
  reasonText,
  sanctionOf,
  untilText,
} from './moderation';
import { showReports } from './reports';
import { markedRead, renderRooms, startDirect } from './rooms';
import { showRoomSettings } from './settings';
import { me, state } from './state';
import { closeThread } from './threads';
import { act, showHint, showScreen } from './ui';

const PAGE = 30;

export async function openRoom(roomId: string, name: string): Promise<void> {
  const { client } = state;
  if (state.open && state.open.id !== roomId) client.forget(state.open.id);
  closeThread();
  clearEarlyStreamEvents();
  const joined = await client.join(roomId).catch((e: unknown) => {
    const ban = sanctionOf(e);
    if (!ban) throw e;
    throw new Error(
      `You are banned from #${name} ${untilText(ban.until)}${reasonText(ban.reason)}`,
    );
  });
  const mine = joined.members.find((m) => m.userId === me().id);
  state.open = {
    id: roomId,
    room: joined.room,
    members: new Map(joined.members.map((m) => [m.userId, m])),
    online: new Set(joined.online),
    typing: new Map(),
    oldestId: joined.messages[0]?.id ?? null,
    hasMoreBefore: joined.hasMore,
    lastTypingSent: 0,
    // After a reload too: the member list tells me my own mute's reason.
    myMute: mine && mutedNow(mine) ? { until: mine.mutedUntil, reason: mine.muteReason } : null,
    sendAfter: 0,
    blocked: null,
    openReports: null,
  };
  state.streams.clear();
  state.shown.clear();
  const input = composer(roomId, name);
  showScreen(
    h(
      'div',
      { class: 'room-head' },
      h('h2', { attrs: { 'data-testid': 'room-title' } }, name),
      joined.room.kind !== 'conversation' &&
        h(
          'button',
          {
            class: 'small',
            title: 'Room settings and members',
            attrs: { 'data-testid': 'room-settings' },
            on: { click: () => void act(() => showRoomSettings(roomId, name)) },
          },
          '⚙ Settings',
        ),
      h('span', { class: 'room-tools', attrs: { id: 'room-tools' } }),
      h('ul', { class: 'members', attrs: { id: 'members' } }),
    ),
    h(
      'button',
      { attrs: { id: 'older' }, on: { click: () => void act(loadOlder) } },
      'Load older messages',
    ),
    h('ol', { class: 'messages', attrs: { id: 'messages', 'data-testid': 'messages' } }),
    h('p', { class: 'typing', attrs: { id: 'typing' } }),
    h('p', {
      class: 'composer-note',
      attrs: { id: 'composer-note', 'data-testid': 'composer-note', role: 'status' },
    }),
    input.tray,
    input.form,
  );
  for (const m of joined.messages) showMessage(m);
  resumeStreams(joined.streams);
  renderMembers();
  renderRoomTools();
  renderComposerState();
  void countReports(roomId);
  updateOlderButton();
  renderRooms();
  markRead(joined.messages);
  input.field.focus();
}

export function closeRoom(): void {
  if (state.open) state.client.forget(state.open.id);
  state.open = null;
  closeThread();
  showHint();
  renderRooms();
}

async function loadOlder(): Promise<void> {
  const room = state.open;
  if (!room || room.oldestId === null) return;
  const page = await state.client.request('history.fetch', {
    roomId: room.id,
    before: room.oldestId,
    limit: PAGE,
  });
  const list = $('#messages');
  const height = list.scrollHeight;
  for (const m of [...page.items].reverse()) {
    state.shown.set(m.id, m);
    list.prepend(renderMessage(m));
  }
  room.oldestId = page.items[0]?.id ?? room.oldestId;
  room.hasMoreBefore = page.hasMore;
  list.scrollTop += list.scrollHeight - height; // keep the view where it was
  updateOlderButton();
}

function updateOlderButton(): void {
  const older = document.getElementById('older');
  if (older) older.hidden = !state.open?.hasMoreBefore;
}

/**
 * The head's badges (archived, slow mode) and, for moderators, the reports queue with its
 * count of open reports.
 */
export function renderRoomTools(): void {
  const open = state.open;
  const tools = document.getElementById('room-tools');
  if (!open || !tools) return;
  const { room } = open;
  const slow = room.slowModeMs;
  tools.replaceChildren(
    ...[
      room.archivedAt &&
        h('span', { class: 'tag', attrs: { 'data-testid': 'badge-archived' } }, 'archived'),
      slow > 0 &&
        h(
          'span',
          {
            class: 'tag',
            title: 'One message per member per interval; moderators are exempt',
            attrs: { 'data-testid': 'badge-slow' },
          },
          `slow mode · ${slow / 1000} s`,
        ),
      mayModerate(room) &&
        h(
          'button',
          {
            class: 'small',
            title: 'Reports of messages in this room',
            attrs: { 'data-testid': 'open-reports' },
            on: { click: () => void act(() => showReports(open.id, roomTitle())) },
          },
          '⚑ Reports',
          open.openReports
            ? h(
                'span',
                { class: 'badge', attrs: { 'data-testid': 'report-count' } },
                open.openReports,
              )
            : '',
        ),
    ].filter((x): x is HTMLElement => !!x),
  );
}

const roomTitle = () => document.querySelector('[data-testid=room-title]')?.textContent ?? '';

/** Moderators: how many reports are open in the room (counted up to 100). */
async function countReports(roomId: string): Promise<void> {
  const open = state.open;
  if (!open || !mayModerate(open.room)) return;
  const page = await state.session
    .api<ReportPageDto>('GET', `/rooms/${roomId}/reports?status=open&limit=100`)
    .catch(() => null);
  if (!page || state.open?.id !== roomId) return;
  state.open.openReports = page.items.length;
  renderRoomTools();
}

/** The open room changed (archived, slow mode, my role or mute): its head and composer. */
export function roomStateChanged(): void {
  renderRoomTools();
  renderComposerState();
  if (state.open?.openReports === null) void countReports(state.open.id); // made a moderator
}

/** Members with presence; another member's name starts a direct message with them. */
export function renderMembers(): void {
  const open = state.open;
  const list = document.getElementById('members');
  if (!open || !list) return;
  list.replaceChildren(
    ...[...open.members.values()].map((m) =>
      h(
        'li',
        {
          class: open.online.has(m.userId) ? 'online' : 'offline',
          attrs: { 'data-member': m.username },
        },
        m.userId === me().id || open.room.kind === 'direct'
          ? (m.displayName ?? m.username)
          : h(
              'button',
              {
                class: 'link',
                title: `Direct message ${m.username}`,
                attrs: { 'data-testid': 'dm' },
                on: { click: () => void act(() => startDirect(m.userId)) },
              },
              m.displayName ?? m.username,
            ),
        memberMarks(m),
      ),
    ),
  );
}

export function renderTyping(): void {
  const names = [...(state.open?.typing.values() ?? [])];
  const el = document.getElementById('typing');
  if (el)
    el.textContent = names.length
      ? `${names.join(', ')} ${names.length > 1 ? 'are' : 'is'} typing…`
      : '';
}

let readTimer: ReturnType<typeof setTimeout> | undefined;
/** Marks the open room read up to its newest message (debounced); the badge takes the answer. */
export function markRead(messages: MessageDto[]): void {
  const newest = messages.at(-1);
  if (!state.open || !newest) return;
  const roomId = state.open.id;
  clearTimeout(readTimer);
  readTimer = setTimeout(() => {
    void state.client
      .request('read.mark', { roomId, messageId: newest.id })
      .then(markedRead, () => undefined);
  }, 300);
}
