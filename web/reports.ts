/**
 * A room's queue of open reports, for its owner, moderators and admins: each report with the
 * message as it is now, resolved with an action (remove the message, mute or ban its author,
 * or none) and a reason, or dismissed. Kept live item by item (report.created adds one,
 * report.resolved takes one away), so a moderator's half-filled form survives the others.
 */
import type { ReportAction } from '../src/common/wire';
import type { ReportDto, ReportPageDto } from '../src/moderation/dto/report.dto';
import type { MemberPageDto } from '../src/rooms/dto/room.dto';
import { h } from './dom';
import { durationOf, durationSelect, textField, tombstoneText } from './moderation';
import { openRoom } from './room-view';
import { state } from './state';
import { act, showScreen } from './ui';

/** Members' names of the room on screen, for "reported by". */
let names = new Map<string, string>();

export async function showReports(roomId: string, name: string): Promise<void> {
  const [page, members] = await Promise.all([
    state.session.api<ReportPageDto>('GET', `/rooms/${roomId}/reports?status=open&limit=100`),
    state.session.api<MemberPageDto>('GET', `/rooms/${roomId}/members?limit=500`).catch(() => null),
  ]);
  if (state.open) state.client.forget(state.open.id);
  state.open = null;
  names = new Map(members?.items.map((m) => [m.userId, m.username]));
  showScreen(
    h(
      'div',
      { class: 'room-head' },
      h('h2', { attrs: { 'data-testid': 'room-title' } }, `⚑ Reports · ${name}`),
      h(
        'button',
        { class: 'small', on: { click: () => void act(() => openRoom(roomId, name)) } },
        'Back to room',
      ),
    ),
    h(
      'ul',
      { class: 'member-list reports', attrs: { id: 'reports', 'data-testid': 'report-list' } },
      ...page.items.map(reportItem),
    ),
    page.nextCursor && h('p', { class: 'hint' }, 'More after these: resolve some first.'),
  );
  state.screen = { kind: 'reports', roomId, name };
  renderEmpty();
}

/** report.created: on top of the queue, if it is on screen. */
export function reportArrived(r: ReportDto): void {
  const list = queueOf(r.roomId);
  if (!list || list.querySelector(`[data-report-id="${r.id}"]`)) return;
  list.prepend(reportItem(r));
  renderEmpty();
}

/** report.resolved (or our own resolve or dismiss): out of the queue. */
export function reportClosed(r: Pick<ReportDto, 'id' | 'roomId'>): void {
  queueOf(r.roomId)?.querySelector(`[data-report-id="${r.id}"]`)?.remove();
  renderEmpty();
}

const queueOf = (roomId: string) =>
  state.screen?.kind === 'reports' && state.screen.roomId === roomId
    ? document.getElementById('reports')
    : null;

function renderEmpty(): void {
  const list = document.getElementById('reports');
  if (!list) return;
  const open = list.querySelectorAll('[data-report-id]').length;
  const hint = list.querySelector('.hint');
  if (open) hint?.remove();
  else if (!hint) list.append(h('li', { class: 'hint' }, 'No open reports.'));
}

function reportItem(r: ReportDto): HTMLLIElement {
  const m = r.message;
  const author = m?.author ? (m.author.username ?? `@${m.author.handle}`) : 'unknown';
  const action = h(
    'select',
    { name: 'report-action', attrs: { 'aria-label': 'Action' } },
    h('option', { value: 'delete' }, 'remove the message'),
    h('option', { value: 'mute' }, `mute ${author}`),
    h('option', { value: 'ban' }, `ban ${author}`),
    h('option', { value: 'none' }, 'no action'),
  );
  const duration = durationSelect('report-duration');
  const reason = textField('report-reason', 'reason', 500);
  const showDuration = () => (duration.hidden = !['mute', 'ban'].includes(action.value));
  action.addEventListener('change', showDuration);
  showDuration();
  const close = (verb: 'resolve' | 'dismiss', body: object) =>
    act(async () =>
      reportClosed(await state.session.api<ReportDto>('POST', `/reports/${r.id}/${verb}`, body)),
    );
  return h(
    'li',
    { attrs: { 'data-report-id': r.id } },
    h('strong', {}, r.category),
    h(
      'span',
      { class: 'meta' },
      ` by ${names.get(r.reporterId) ?? 'a member'} · ${new Date(r.createdAt).toLocaleString()}`,
    ),
    r.text && h('p', { class: 'report-text' }, r.text),
    h(
      'blockquote',
      { attrs: { 'data-testid': 'reported-message' } },
      h('span', { class: 'author' }, author),
      m ? (m.deletedAt ? tombstoneText(m) : (m.content ?? '')) : '(gone)',
    ),
    h(
      'form',
      {
        class: 'inline-form',
        on: {
          submit: (ev) => {
            ev.preventDefault();
            const chosen = action.value as ReportAction;
            const sec = ['mute', 'ban'].includes(chosen) ? durationOf(duration) : undefined;
            void close('resolve', {
              action: chosen,
              reason: reason.value.trim(),
              ...(sec ? { durationSec: sec } : {}),
            });
          },
        },
      },
      action,
      duration,
      reason,
      h(
        'button',
        { type: 'submit', class: 'small danger', attrs: { 'data-testid': 'resolve' } },
        'Resolve',
      ),
      h(
        'button',
        {
          type: 'button',
          class: 'small',
          attrs: { 'data-testid': 'dismiss' },
          on: { click: () => void close('dismiss', {}) },
        },
        'Dismiss',
      ),
    ),
  );
}
