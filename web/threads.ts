/**
 * The thread panel: a root and its replies (`thread.fetch`: the latest page first, as Slack and
 * Mattermost open a thread at its end, then earlier pages with `before`; from a notification, the
 * page that ends at its reply, then later pages with `after`), a composer that replies
 * (`replyToId`), follow/unfollow, kept live from `message.created|updated|deleted` and
 * `thread.updated`. Beside the room on a desktop, over it on a phone.
 */
import type { MessageDto, ThreadPageDto, ThreadUpdated } from '../client/index';
import type { ThreadFetchPayload } from '../src/common/wire';
import type { ThreadFollowDto } from '../src/messages/dto/message.dto';
import { messageBox } from './composer';
import { h } from './dom';
import { messageItem, showMessage, threadSummary } from './messages';
import { state, type OpenThread } from './state';
import { act } from './ui';

const PAGE = 50;

/** Opens the thread of message `id` (its root, or any reply) in the panel. */
export async function openThread(id: number): Promise<void> {
  showThread(await fetchThread(id));
}

/** Live thread events being kept, one list per `thread.fetch` on its way. */
const fetching = new Set<(() => void)[]>();

/**
 * A page of a thread, with what replays the live thread events that came while it was on its
 * way: those written after the server read the page would otherwise miss the page (a panel not
 * shown yet, replies not loaded yet). Replayed once the page is shown; an older copy of a
 * message never replaces a newer one (`threadMessage`).
 */
async function fetchPage(
  q: Omit<ThreadFetchPayload, 'limit'>,
): Promise<[ThreadPageDto, () => void]> {
  const came: (() => void)[] = [];
  fetching.add(came);
  try {
    const page = await state.client.request('thread.fetch', { ...q, limit: PAGE });
    return [page, () => came.forEach((replay) => replay())];
  } finally {
    fetching.delete(came);
  }
}

/** Each fetched latest page's replay (`fetchPage`), for `showThread`. */
const replays = new WeakMap<ThreadPageDto, () => void>();

/**
 * The thread `id` is in (`root.id !== id` when `id` is a reply): its latest page, or with `at` the
 * page that ends at reply `id` (a notification's reply, however far back it is).
 */
export async function fetchThread(id: number, at = false): Promise<ThreadPageDto> {
  const [page, replay] = await fetchPage(
    at ? { messageId: id, before: id + 1 } : { messageId: id, latest: true },
  );
  replays.set(page, replay);
  return page;
}

/** Shows a thread's page (as `fetchThread` answers it) in the panel, scrolled to its end. */
export function showThread(page: ThreadPageDto): void {
  state.thread = {
    root: page.root,
    replies: new Map(page.items.map((m) => [m.id, m])),
    prevCursor: page.prevCursor,
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
    h(
      'button',
      { class: 'small', attrs: { 'data-testid': 'thread-earlier' }, on: { click: loadEarlier } },
      'Load earlier replies',
    ),
    h('ol', { class: 'messages', attrs: { 'data-testid': 'thread-replies' } }),
    h(
      'button',
      { class: 'small', attrs: { 'data-testid': 'thread-later' }, on: { click: loadLater } },
      'Load later replies',
    ),
    replyForm(page.root),
  );
  renderThread('end');
  replays.get(page)?.();
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

/**
 * A live message: the root changed, or a reply of the open thread came, changed or went. When the
 * panel holds the thread's end a new reply goes last; a reply on a page not loaded (earlier, or
 * later while the panel shows a notification's page) comes with that page (or, while that page is
 * on its way, is replayed after it).
 */
export function threadMessage(m: MessageDto): void {
  for (const came of fetching) came.push(() => threadMessage(m));
  const t = state.thread;
  if (!t) return;
  const known = m.id === t.root.id ? t.root : t.replies.get(m.id);
  if (known && known.version > m.version) return; // an older copy (replayed, or overtaken)
  if (m.id === t.root.id) t.root = { ...t.root, ...m };
  else if (m.threadRootId !== t.root.id) return;
  else if (
    (t.prevCursor === null || m.id >= t.prevCursor) &&
    (t.nextCursor === null || m.id <= t.nextCursor)
  )
    t.replies.set(m.id, m);
  else return;
  renderThread();
}

/** A root's counters moved: on the root in the room's list, and in the panel. */
export function threadUpdated(e: ThreadUpdated): void {
  for (const came of fetching) came.push(() => threadUpdated(e));
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

/**
 * Draws the open thread. The view: at the end (opened, or a reply of one's own), kept on the
 * same replies (`keep`: earlier ones came in above; `still`: later ones came in below), or by
 * default at the end only if it was there already, so that activity does not pull a reader away
 * from earlier replies.
 */
function renderThread(view: 'end' | 'keep' | 'still' | 'follow' = 'follow'): void {
  const t = state.thread;
  const panel = document.getElementById('thread');
  if (!t || !panel) return;
  const part = (id: string) => panel.querySelector<HTMLElement>(`[data-testid=${id}]`)!;
  part('thread-root').replaceChildren(messageItem(t.root).li);
  part('thread-count').textContent = t.root.replyCount ? threadSummary(t.root) : 'No replies yet';
  const replies = [...t.replies.values()].sort((a, b) => a.id - b.id);
  const list = part('thread-replies');
  const top = list.scrollTop;
  const fromBottom = list.scrollHeight - top;
  const atEnd = fromBottom - list.clientHeight < 40;
  list.replaceChildren(...replies.map((m) => messageItem(m).li));
  if (view === 'end' || (view === 'follow' && atEnd)) list.scrollTop = list.scrollHeight;
  else if (view === 'keep')
    list.scrollTop = list.scrollHeight - fromBottom; // came in above
  else list.scrollTop = top; // `still`, or a reader away from the end
  part('thread-earlier').hidden = t.prevCursor === null;
  part('thread-later').hidden = t.nextCursor === null;
  part('thread-follow').textContent = t.following ? 'Following ✓' : 'Follow';
  part('thread-follow').title = t.following
    ? 'Unfollow: no more notifications for replies'
    : 'Follow: be notified of replies';
}

/** Open threads whose page of earlier or later replies is on its way. */
const loading = new WeakSet<OpenThread>();

/** The open thread's page of earlier replies, shown above, the view kept where it was. */
function loadEarlier(): void {
  const t = state.thread;
  if (t?.prevCursor != null) loadPage(t, { before: t.prevCursor });
}

/** The open thread's page of later replies, shown below, the view kept where it was. */
function loadLater(): void {
  const t = state.thread;
  if (t?.nextCursor != null) loadPage(t, { after: t.nextCursor });
}

function loadPage(t: OpenThread, range: { before: number } | { after: number }): void {
  if (loading.has(t)) return; // on its way
  loading.add(t);
  void act(async () => {
    const [page, replay] = await fetchPage({ messageId: t.root.id, ...range }).finally(() =>
      loading.delete(t),
    );
    if (state.thread !== t) return; // closed, or another thread opened
    for (const m of page.items) t.replies.set(m.id, m);
    if ('before' in range) t.prevCursor = page.prevCursor;
    else t.nextCursor = page.nextCursor;
    renderThread('before' in range ? 'keep' : 'still');
    replay();
  });
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
        // One's own reply, shown last wherever the view was: from a page short of the thread's
        // end, the panel moves to the end.
        if (state.thread?.root.id === root.id && state.thread.nextCursor !== null)
          return showThread(await fetchThread(root.id));
        threadMessage(sent);
        renderThread('end');
      }),
  }).form;
}

function panelEl(): HTMLElement {
  return document.getElementById('thread')!;
}
