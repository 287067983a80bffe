/**
 * One message on the page: text (mentions highlighted), time, reactions, edit and delete;
 * report and (moderators) remove; its thread (replies, Reply); persona streams.
 */
import type { MessageDto, PersonaStreamSnapshot, ServerEvents } from '../client/index';
import { attachmentList } from './attachments';
import { $, h } from './dom';
import { mentionsMe, mentionText } from './mentions';
import { mayModerate, removeButton, reportButton, tombstoneText } from './moderation';
import { isAdmin, me, state } from './state';
import { openThread } from './threads';
import { act } from './ui';

const REACTIONS = ['👍', '❤️', '😂'];

/** Inserts or replaces a message in the open room's list, in id order. */
export function showMessage(m: MessageDto): void {
  const open = state.open;
  if (!open || m.roomId !== open.id) return;
  const list = document.getElementById('messages');
  if (!list) return;
  state.shown.set(m.id, m);
  const el = renderMessage(m);
  const existing = list.querySelector(`li[data-id="${m.id}"]`);
  if (existing) {
    existing.replaceWith(el);
    return;
  }
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const after = [...list.querySelectorAll<HTMLElement>('li[data-id]')].find(
    (li) => Number(li.dataset.id) > m.id,
  );
  list.insertBefore(el, after ?? list.querySelector('li.streaming'));
  if (open.oldestId === null || m.id < open.oldestId) open.oldestId = m.id;
  if (atBottom || m.author?.id === me().id) list.scrollTop = list.scrollHeight;
}

export function renderMessage(m: MessageDto): HTMLLIElement {
  const mine = m.author?.kind === 'user' && m.author.id === me().id;
  const { li, text } = messageItem(m);
  if (mine) li.classList.add('mine');
  if (m.threadRootId !== null) li.append(threadLink(m.threadRootId, 'in a thread', 'in-thread'));
  if (m.replyCount) li.append(threadLink(m.id, threadSummary(m), 'thread-summary'));
  if (m.deletedAt || m.role === 'system') return li;
  li.append(reactions(m));
  if (m.threadRootId === null && state.open?.room.kind !== 'conversation')
    li.append(threadLink(m.id, 'Reply', 'reply', 'small'));
  if (mine) {
    li.append(
      h('button', { class: 'small', on: { click: () => editInPlace(text, m) } }, 'Edit'),
      h(
        'button',
        {
          class: 'small danger',
          on: {
            click: () =>
              confirm('Delete this message?') &&
              void act(() => state.client.request('message.delete', { messageId: m.id })),
          },
        },
        'Delete',
      ),
    );
  }
  const room = state.open?.room;
  if (!mine && room && room.kind !== 'conversation') {
    li.append(reportButton(m));
    if (mayModerate(room)) li.append(removeButton(m));
  }
  return li;
}

/**
 * A message's line without its actions (the room's list and the thread panel): author, time,
 * the text with its mentions, (edited), its files; marked when it mentions me.
 */
export function messageItem(m: MessageDto): { li: HTMLLIElement; text: HTMLElement } {
  const author = m.author
    ? (m.author.displayName ?? m.author.username ?? `@${m.author.handle}`)
    : '';
  const text = h(
    'span',
    { class: 'text', attrs: { 'data-testid': 'text' } },
    ...(m.deletedAt ? [tombstoneText(m)] : mentionText(m)),
  );
  const flags = `${m.deletedAt ? ' deleted' : ''}${m.removedByModeration ? ' removed' : ''}${mentionsMe(m) ? ' mentions-me' : ''}`;
  const li = h(
    'li',
    { class: `msg ${m.role}${flags}`, attrs: { 'data-id': String(m.id) } },
    author && h('span', { class: 'author' }, author),
    timestamp(m.createdAt),
    text,
    m.editedAt && !m.deletedAt && h('span', { class: 'meta' }, ' (edited)'),
    m.finishReason &&
      m.finishReason !== 'stop' &&
      h('span', { class: 'meta' }, ` (${m.finishReason})`),
    attachmentList(m),
  );
  return { li, text };
}

/** "2 replies · last 14:05" under a thread's root. */
export function threadSummary(m: MessageDto): string {
  const n = m.replyCount ?? 0;
  const last = m.lastReplyAt ? ` · last ${timeText(new Date(m.lastReplyAt))}` : '';
  return `${n} ${n === 1 ? 'reply' : 'replies'}${last}`;
}

function threadLink(rootId: number, label: string, testid: string, cls = 'link thread-link') {
  return h(
    'button',
    {
      class: cls,
      attrs: { 'data-testid': testid },
      on: { click: () => void act(() => openThread(rootId)) },
    },
    label,
  );
}

/** Draws the open room's messages again (who may remove changed). */
export function redrawMessages(): void {
  for (const m of state.shown.values()) showMessage(m);
}

function reactions(m: MessageDto): HTMLElement {
  const out = h('span', { class: 'reactions' });
  for (const emoji of REACTIONS) {
    const r = m.reactions.find((x) => x.emoji === emoji);
    const mine = r?.userIds.includes(me().id) ?? false;
    out.append(
      h(
        'button',
        {
          class: `reaction${mine ? ' me' : ''}`,
          title: mine ? 'Take back' : 'React',
          on: {
            click: () =>
              void act(() =>
                state.client.request(mine ? 'reaction.remove' : 'reaction.add', {
                  messageId: m.id,
                  emoji,
                }),
              ),
          },
        },
        emoji,
        r ? ` ${r.count}` : '',
      ),
    );
  }
  return out;
}

/** The message's time in the reader's local time zone (the date too when not today). */
export function timestamp(at: Date | string): HTMLElement {
  const d = new Date(at);
  return h(
    'time',
    {
      class: 'meta time',
      title: d.toLocaleString(),
      attrs: { datetime: d.toISOString(), 'data-testid': 'time' },
    },
    timeText(d),
  );
}

/** "14:05" today, with the date on other days (the reader's locale). */
function timeText(d: Date): string {
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return d.toDateString() === new Date().toDateString()
    ? time
    : `${d.toLocaleDateString()} ${time}`;
}

function editInPlace(text: HTMLElement, m: MessageDto): void {
  const input = h('input', { value: m.content ?? '', attrs: { 'data-testid': 'edit-input' } });
  const form = h(
    'form',
    {
      class: 'edit',
      on: {
        submit: (ev) => {
          ev.preventDefault();
          void act(async () =>
            showMessage(
              await state.client.request('message.edit', { messageId: m.id, content: input.value }),
            ),
          );
        },
      },
    },
    input,
    h('button', { type: 'submit' }, 'Save'),
    h('button', { type: 'button', on: { click: () => form.replaceWith(text) } }, 'Cancel'),
  );
  text.replaceWith(form);
  input.focus();
}

/** Early stream events kept while a room is joined: at most this many deltas in all. */
const EARLY_MAX = 500;

export function streamStart(e: ServerEvents['persona.stream.start']): void {
  if (state.open?.id !== e.roomId || state.streams.has(e.messageId)) return;
  addStream(e, '', 0);
}

/**
 * The replies in progress when the room was joined or re-joined after a reconnect (room.join's
 * `streams`): each shows the text so far, then the deltas from its `nextSeq` on, those that came
 * meanwhile included. So a reload, a second tab or a reconnect mid-reply shows the whole reply,
 * no gap, no repeat. A reply shown here but not in the snapshot ended while we were away (its
 * message comes with the catch-up).
 */
export function resumeStreams(snapshots: PersonaStreamSnapshot[]): void {
  const { deltas, ended } = state.early;
  const live = new Set(snapshots.map((s) => s.messageId));
  for (const [id, s] of state.streams) {
    if (!live.has(id)) {
      state.streams.delete(id);
      s.text.closest('li')?.remove();
    }
  }
  for (const snap of snapshots) {
    if (ended.has(snap.messageId)) continue;
    const s = state.streams.get(snap.messageId);
    if (!s) addStream(snap, snap.text, snap.nextSeq);
    else if (snap.nextSeq >= s.nextSeq) {
      s.text.textContent = snap.text;
      s.nextSeq = snap.nextSeq;
    }
    const early = (deltas.get(snap.messageId) ?? []).sort((a, b) => a.seq - b.seq);
    deltas.delete(snap.messageId);
    for (const d of early) streamDelta(d);
  }
  for (const e of ended.values()) if (e.message) showMessage(e.message);
  deltas.clear();
  ended.clear();
}

/** Forgets early events (a room is about to be joined). */
export function clearEarlyStreamEvents(): void {
  state.early.deltas.clear();
  state.early.ended.clear();
}

function addStream(
  s: { messageId: string; personaId: string; replyToId: number | null },
  soFar: string,
  nextSeq: number,
): void {
  const text = h('span', { class: 'text' }, soFar);
  state.streams.set(s.messageId, { text, nextSeq });
  // Only whoever triggered the reply, or an admin, may stop it: others get no Stop button.
  const trigger = s.replyToId === null ? undefined : state.shown.get(s.replyToId);
  const mayStop = isAdmin() || trigger?.author?.id === me().id;
  const cancel =
    mayStop &&
    h(
      'button',
      {
        class: 'small',
        on: {
          click: () =>
            void act(() => state.client.request('persona.cancel', { messageId: s.messageId })),
        },
      },
      'Stop',
    );
  $('#messages').append(
    h(
      'li',
      { class: 'msg assistant streaming', attrs: { 'data-stream': s.messageId } },
      h('span', { class: 'author' }, `@${state.personas.get(s.personaId)?.handle ?? 'persona'}`),
      text,
      cancel,
    ),
  );
}

export function streamDelta(e: ServerEvents['persona.stream.delta']): void {
  const s = state.streams.get(e.messageId);
  if (!s) {
    keepEarly(e); // perhaps a reply in a room being joined: kept until its snapshot
    return;
  }
  if (e.seq < s.nextSeq) return; // already in the snapshot's text
  if (e.seq > s.nextSeq) {
    // A gap (deltas lost while the socket was down): held until the re-join's snapshot.
    keepEarly(e);
    return;
  }
  s.text.textContent += e.delta;
  s.nextSeq = e.seq + 1;
}

function keepEarly(e: ServerEvents['persona.stream.delta']): void {
  const early = state.early.deltas;
  if ([...early.values()].reduce((n, l) => n + l.length, 0) >= EARLY_MAX) return;
  early.set(e.messageId, [...(early.get(e.messageId) ?? []), e]);
}

export function streamEnd(e: ServerEvents['persona.stream.end']): void {
  const s = state.streams.get(e.messageId);
  if (!s) {
    if (state.early.ended.size < EARLY_MAX) state.early.ended.set(e.messageId, e);
    return;
  }
  state.streams.delete(e.messageId);
  s.text.closest('li')?.remove();
  if (e.message) showMessage(e.message);
}
