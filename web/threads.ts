/**
 * The thread panel: a root and its replies (GET /messages/:id/thread, paged forward with
 * `after`), a composer that replies (`replyToId`), follow/unfollow, kept live from
 * `message.created|updated|deleted` and `thread.updated`. Beside the room on a desktop, over it
 * on a phone.
 */
import type { MessageDto, ThreadPageDto, ThreadUpdated } from '../client/index';
import type { ThreadFollowDto } from '../src/messages/dto/message.dto';
import { messageBox } from './composer';
import { h } from './dom';
import { messageItem, showMessage, threadSummary } from './messages';
import { state } from './state';
import { act } from './ui';

const PAGE = 50;

/** Opens the thread of message `id` (its root, or any reply) in the panel. */
export async function openThread(id: number): Promise<void> {
  showThread(await fetchThread(id));
}

/** The thread `id` is in: `root.id !== id` when `id` is a reply. */
export const fetchThread = (id: number) =>
  state.client.request('thread.fetch', { messageId: id, limit: PAGE });

export function showThread(page: ThreadPageDto): void {
  state.thread = {
    root: page.root,
    replies: new Map(page.items.map((m) => [m.id, m])),
    nextCursor: page.nextCursor,
    following: page.following,
  };
  const panel = panelEl();
  panel.hidden = false;
  document.querySelector('.layout')?.classList.add('thread-open');
  panel.replaceChildren(
    h(
      'div',
      { class: 'panel-head' },
      h('h3', {}, 'Thread'),
      h('button', {
        class: 'small',
        attrs: { 'data-testid': 'thread-follow' },
        on: { click: () => void act(toggleFollow) },
      }),
      h(
        'button',
        {
          class: 'small',
          title: 'Close the thread',
          attrs: { 'data-testid': 'thread-close' },
          on: { click: closeThread },
        },
        '×',
      ),
    ),
    h('ol', { class: 'messages thread-root', attrs: { 'data-testid': 'thread-root' } }),
    h('p', { class: 'meta', attrs: { 'data-testid': 'thread-count' } }),
    h('ol', { class: 'messages', attrs: { 'data-testid': 'thread-replies' } }),
    h(
      'button',
      { class: 'small', attrs: { 'data-testid': 'thread-more' }, on: { click: loadMore } },
      'Load more replies',
    ),
    replyForm(page.root),
  );
  renderThread();
  panel.querySelector<HTMLInputElement>('input[name=thread-message]')?.focus();
}

export function closeThread(): void {
  state.thread = null;
  const panel = document.getElementById('thread');
  if (panel) {
    panel.hidden = true;
    panel.replaceChildren();
  }
  document.querySelector('.layout')?.classList.remove('thread-open');
}

/** A live message: the root changed, or a reply of the open thread came, changed or went. */
export function threadMessage(m: MessageDto): void {
  const t = state.thread;
  if (!t) return;
  if (m.id === t.root.id) t.root = { ...t.root, ...m };
  else if (m.threadRootId === t.root.id && (t.nextCursor === null || t.replies.has(m.id)))
    t.replies.set(m.id, m); // past an unloaded page it comes with "Load more replies"
  else return;
  renderThread();
}

/** A root's counters moved: on the root in the room's list, and in the panel. */
export function threadUpdated(e: ThreadUpdated): void {
  const change = (m: MessageDto): MessageDto =>
    m.version >= e.version
      ? m
      : {
          ...m,
          version: e.version,
          replyCount: e.replyCount,
          lastReplyAt: new Date(e.lastReplyAt),
          threadParticipants: e.participants,
        };
  const shown = state.shown.get(e.rootId);
  if (shown) showMessage(change(shown));
  const t = state.thread;
  if (t?.root.id === e.rootId) {
    t.root = change(t.root);
    renderThread();
  }
}

function renderThread(): void {
  const t = state.thread;
  const panel = document.getElementById('thread');
  if (!t || !panel) return;
  const part = (id: string) => panel.querySelector<HTMLElement>(`[data-testid=${id}]`)!;
  part('thread-root').replaceChildren(messageItem(t.root).li);
  part('thread-count').textContent = t.root.replyCount ? threadSummary(t.root) : 'No replies yet';
  const replies = [...t.replies.values()].sort((a, b) => a.id - b.id);
  const list = part('thread-replies');
  list.replaceChildren(...replies.map((m) => messageItem(m).li));
  list.scrollTop = list.scrollHeight;
  part('thread-more').hidden = t.nextCursor === null;
  part('thread-follow').textContent = t.following ? 'Following ✓' : 'Follow';
  part('thread-follow').title = t.following
    ? 'Unfollow: no more notifications for replies'
    : 'Follow: be notified of replies';
}

function loadMore(): void {
  const t = state.thread;
  if (t) void act(() => loadPage(t.root.id));
}

/** The open thread's next page of replies, if it is still the open thread and has one. */
async function loadPage(rootId: number): Promise<void> {
  const t = state.thread;
  if (t?.root.id !== rootId || t.nextCursor === null) return;
  const page = await state.client.request('thread.fetch', {
    messageId: rootId,
    after: t.nextCursor,
    limit: PAGE,
  });
  if (state.thread !== t) return;
  for (const m of page.items) t.replies.set(m.id, m);
  t.nextCursor = page.nextCursor;
  renderThread();
}

/**
 * Every page not loaded yet: a reply of one's own shows at the end of the thread, with the
 * replies before it (live replies past an unloaded page wait for "Load more replies").
 */
async function loadRest(rootId: number): Promise<void> {
  while (state.thread?.root.id === rootId && state.thread.nextCursor !== null)
    await loadPage(rootId);
}

async function toggleFollow(): Promise<void> {
  const t = state.thread;
  if (!t) return;
  const res = await state.session.api<ThreadFollowDto>(
    t.following ? 'DELETE' : 'PUT',
    `/messages/${t.root.id}/follow`,
  );
  if (state.thread?.root.id !== res.rootId) return;
  state.thread.following = res.following;
  renderThread();
}

function replyForm(root: MessageDto): HTMLFormElement {
  return messageBox({
    name: 'thread-message',
    placeholder: 'Reply in the thread',
    button: 'Reply',
    testid: 'thread-send',
    send: (content, field) =>
      void act(async () => {
        let sent: MessageDto;
        try {
          sent = await state.client.send(root.roomId, content, { replyToId: root.id });
        } catch (e) {
          if (!field.value) field.value = content;
          throw e;
        }
        showMessage(sent);
        await loadRest(root.id); // sent: a failure here is the pages', not the reply's
        threadMessage(sent);
      }),
  }).form;
}

function panelEl(): HTMLElement {
  return document.getElementById('thread')!;
}
