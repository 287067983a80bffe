/**
 * My notifications: the header's bell with the unread count (GET /notifications/unread-count)
 * and the list (GET /notifications, newest first, "Load older"); a click opens the room (and the
 * thread, for a reply) and marks it read; "Mark all read". Kept live from `notification.created`
 * and `notifications.read` (marked on any of my devices, or by reading the room).
 */
import type { NotificationDto, NotificationKind } from '../client/index';
import type {
  NotificationPageDto,
  UnreadNotificationsDto,
} from '../src/notifications/dto/notification.dto';
import { $, h } from './dom';
import { timestamp } from './messages';
import { openRoom } from './room-view';
import { roomLabel } from './rooms';
import { state } from './state';
import { fetchThread, showThread } from './threads';
import { act, setSidebar } from './ui';

const PAGE = 30;
const KIND: Record<NotificationKind, string> = {
  mention: 'mentioned you',
  direct: 'wrote to you',
  thread: 'replied in a thread',
  message: 'wrote',
};

/** The header's bell: opens and closes the list. */
export function bell(): HTMLButtonElement {
  return h(
    'button',
    {
      class: 'bell',
      title: 'Notifications',
      attrs: { 'data-testid': 'bell', 'aria-controls': 'notifications', 'aria-expanded': 'false' },
      on: { click: () => showList(!!panel().hidden) },
    },
    '🔔',
    h('span', { class: 'badge', attrs: { 'data-testid': 'bell-count' } }),
  );
}

/** The list's panel (hidden until the bell opens it). */
export function notificationPanel(): HTMLElement {
  const el = h(
    'section',
    { class: 'notifications', attrs: { id: 'notifications', 'data-testid': 'notifications' } },
    h(
      'div',
      { class: 'panel-head' },
      h('h3', {}, 'Notifications'),
      h(
        'button',
        {
          class: 'small',
          attrs: { 'data-testid': 'notif-read-all' },
          on: { click: () => void act(() => state.client.request('notification.read', {})) },
        },
        'Mark all read',
      ),
      h('button', { class: 'small', title: 'Close', on: { click: () => showList(false) } }, '×'),
    ),
    h('ul', { attrs: { id: 'notif-list', 'data-testid': 'notif-list' } }),
    h(
      'button',
      { class: 'small', attrs: { id: 'notif-more' }, on: { click: () => void act(loadOlder) } },
      'Load older',
    ),
  );
  el.hidden = true;
  return el;
}

/** Live notification events seen so far: a load whose answer may predate one of them retries. */
let events = 0;

/**
 * The first page and the unread count, replacing what is shown. An event that arrives while the
 * requests are in flight may be newer than their answers, which would then undo it: so when one
 * did, load again (a few times at most; each answer includes what had committed before it). Each
 * load keeps its own count, so two loads at once (the first, and one on a reconnect) cannot hide
 * an event from each other.
 */
export async function loadNotifications(): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const seen = events;
    const [count, page] = await Promise.all([
      state.session.api<UnreadNotificationsDto>('GET', '/notifications/unread-count'),
      state.session.api<NotificationPageDto>('GET', `/notifications?limit=${PAGE}`),
    ]);
    state.notifications = { items: page.items, unread: count.total, nextCursor: page.nextCursor };
    render();
    if (events === seen) return;
  }
}

async function loadOlder(): Promise<void> {
  const n = state.notifications;
  if (n.nextCursor === null) return;
  const page = await state.session.api<NotificationPageDto>(
    'GET',
    `/notifications?limit=${PAGE}&before=${n.nextCursor}`,
  );
  const known = new Set(n.items.map((x) => x.id));
  n.items.push(...page.items.filter((x) => !known.has(x.id)));
  n.nextCursor = page.nextCursor;
  render();
}

export function notificationCreated(x: NotificationDto): void {
  events++;
  const n = state.notifications;
  if (n.items.some((i) => i.id === x.id)) return;
  n.items.unshift(x);
  if (!x.readAt) n.unread++;
  render();
}

/** `notifications.read`: the ids were unread and are read now. */
export function notificationsRead(ids: number[]): void {
  events++;
  const n = state.notifications;
  const read = new Set(ids);
  const now = new Date();
  n.items = n.items.map((x) => (read.has(x.id) && !x.readAt ? { ...x, readAt: now } : x));
  n.unread = Math.max(0, n.unread - ids.length);
  render();
}

function showList(open: boolean): void {
  panel().hidden = !open;
  if (open) setSidebar(false); // a phone's drawer would cover the list
  $('[data-testid=bell]').setAttribute('aria-expanded', String(open));
}

const panel = () => $('#notifications');

function render(): void {
  const n = state.notifications;
  const count = document.querySelector<HTMLElement>('[data-testid=bell-count]');
  if (!count) return;
  count.textContent = n.unread ? String(n.unread) : '';
  count.hidden = !n.unread;
  const list = $('#notif-list');
  list.replaceChildren(...n.items.map(item));
  if (!n.items.length) list.append(h('li', { class: 'hint' }, 'Nothing yet.'));
  $('#notif-more').hidden = n.nextCursor === null;
}

function item(x: NotificationDto): HTMLLIElement {
  const actor = x.actor
    ? (x.actor.displayName ?? x.actor.username ?? `@${x.actor.handle}`)
    : 'someone';
  const room =
    x.roomKind === 'group' ? `#${x.roomName}` : roomLabel({ kind: x.roomKind, name: x.roomName });
  return h(
    'li',
    {
      class: x.readAt ? 'read' : 'unread',
      attrs: { 'data-testid': 'notification', 'data-kind': x.kind },
      on: { click: () => void act(() => openNotification(x)) },
    },
    h('span', { class: 'author' }, actor),
    h('span', {}, KIND[x.kind], ' in ', h('strong', {}, room)),
    ' ',
    timestamp(x.createdAt),
    x.excerpt !== undefined && h('span', { class: 'excerpt' }, x.excerpt),
  );
}

/** Opens the notification's room (and its thread, for a reply), and marks it read. */
async function openNotification(x: NotificationDto): Promise<void> {
  showList(false);
  if (!x.readAt)
    void state.client.request('notification.read', { id: x.id }).catch(() => undefined);
  const known = state.rooms.get(x.roomId);
  await openRoom(x.roomId, known ? roomLabel(known) : x.roomName);
  const thread = await fetchThread(x.messageId, true).catch(() => null);
  if (thread && state.open?.id === x.roomId && thread.root.id !== x.messageId) showThread(thread);
}
