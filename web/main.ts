/**
 * Parlor demo client: plain TypeScript and DOM on top of the typed client (client/). Everything
 * a user typed is put on the page with text nodes (see dom.ts), never parsed as HTML.
 */
import { ParlorClient, type MessageDto, type ServerEvents } from '../client/index';
import type { ConversationDto, ConversationPageDto } from '../src/personas/dto/conversation.dto';
import type { PersonaPageDto } from '../src/personas/dto/persona.dto';
import type { MemberDto, RoomDto, RoomPageDto, RoomSummaryDto } from '../src/rooms/dto/room.dto';
import { $, h } from './dom';
import { ApiError, Session } from './session';

const REACTIONS = ['👍', '❤️', '😂'];
const PAGE = 30;

let session: Session;
let client: ParlorClient;
const rooms = new Map<string, RoomSummaryDto>();
const personas = new Map<string, string>(); // id → handle
interface OpenRoom {
  id: string;
  room: RoomDto;
  members: Map<string, MemberDto>;
  online: Set<string>;
  typing: Map<string, string>; // userId → username
  oldestId: number | null;
  hasMoreBefore: boolean;
  lastTypingSent: number;
}
let open: OpenRoom | null = null;
const streams = new Map<string, HTMLElement>(); // persona stream id → its text element
const shown = new Map<number, MessageDto>(); // messages of the open room on the page

// --- start: restore the session, or show the sign-in form ---------------------------------

void (async () => {
  const restored = await Session.restore();
  if (restored) await signedIn(restored);
  else showAuth();
})();

function showAuth(error = ''): void {
  const username = h('input', {
    name: 'username',
    placeholder: 'username',
    required: true,
    autocomplete: 'username',
  });
  const email = h('input', {
    name: 'email',
    type: 'email',
    placeholder: 'email (sign up only)',
    autocomplete: 'email',
  });
  const password = h('input', {
    name: 'password',
    type: 'password',
    placeholder: 'password',
    required: true,
    autocomplete: 'current-password',
  });
  const status = h('p', { class: 'error', attrs: { 'data-testid': 'auth-error' } }, error);
  const go = (signup: boolean) => (ev: Event) => {
    ev.preventDefault();
    void submit(signup);
  };
  const submit = async (signup: boolean) => {
    try {
      const s = signup
        ? await Session.signup(username.value, email.value, password.value)
        : await Session.login(username.value, password.value);
      await signedIn(s);
    } catch (e) {
      status.textContent = e instanceof Error ? e.message : String(e);
    }
  };
  const form = h(
    'form',
    { class: 'auth', attrs: { 'data-testid': 'auth' }, on: { submit: go(false) } },
    h('h1', {}, 'Parlor'),
    username,
    email,
    password,
    h(
      'div',
      {},
      h('button', { type: 'submit' }, 'Log in'),
      ' ',
      h(
        'button',
        { type: 'button', attrs: { 'data-testid': 'signup' }, on: { click: go(true) } },
        'Sign up',
      ),
    ),
    status,
  );
  $('#app').replaceChildren(form);
}

async function signedIn(s: Session): Promise<void> {
  session = s;
  renderShell();
  client = await ParlorClient.connect({
    url: location.origin,
    token: s.accessToken,
    refreshToken: () => s.refresh(),
  });
  wireEvents();
  await Promise.all([loadRooms(), loadConversations(), loadPersonas()]);
}

// --- layout ---------------------------------------------------------------------------------

function renderShell(): void {
  const me = session.user;
  const admin = me.role === 'admin';
  const newRoom = h('input', { name: 'room-name', placeholder: 'new room name', required: true });
  const visibility = h(
    'select',
    { name: 'visibility' },
    h('option', {}, 'public'),
    h('option', {}, 'private'),
  );
  const personaSelect = h('select', { attrs: { id: 'persona-select' } });
  $('#app').replaceChildren(
    h(
      'header',
      {},
      h('strong', {}, 'Parlor'),
      h('span', { attrs: { 'data-testid': 'me' } }, me.username, admin ? ' (admin)' : ''),
      h('span', { attrs: { id: 'conn' } }, 'connecting…'),
      h('button', { on: { click: () => void logout() } }, 'Log out'),
    ),
    h(
      'div',
      { class: 'layout' },
      h(
        'aside',
        {},
        h('h2', {}, 'Rooms'),
        h('ul', { attrs: { id: 'rooms', 'data-testid': 'rooms' } }),
        admin &&
          h(
            'form',
            {
              attrs: { 'data-testid': 'create-room' },
              on: {
                submit: (ev) => {
                  ev.preventDefault();
                  void act(async () => {
                    const room = await session.api<RoomDto>('POST', '/rooms', {
                      name: newRoom.value,
                      visibility: visibility.value,
                    });
                    newRoom.value = '';
                    upsertRoom({
                      ...room,
                      unreadCount: 0,
                      lastReadMessageId: 0,
                      lastMessage: null,
                    });
                  });
                },
              },
            },
            newRoom,
            visibility,
            h('button', { type: 'submit' }, 'Create room'),
          ),
        h('h2', {}, 'Conversations'),
        h('ul', { attrs: { id: 'conversations' } }),
        h(
          'form',
          {
            on: {
              submit: (ev) => {
                ev.preventDefault();
                void act(async () => {
                  const c = await session.api<ConversationDto>('POST', '/conversations', {
                    personaId: personaSelect.value,
                  });
                  await loadConversations();
                  await openRoom(c.id, c.title);
                });
              },
            },
          },
          personaSelect,
          h('button', { type: 'submit' }, 'Talk to persona'),
        ),
      ),
      h('main', { attrs: { id: 'room' } }, h('p', { class: 'hint' }, 'Pick a room.')),
    ),
    h('p', { class: 'error', attrs: { id: 'error' } }),
  );
}

/** Runs a user action and shows its error, if any, in the error line. */
async function act(fn: () => Promise<unknown>): Promise<void> {
  $('#error').textContent = '';
  try {
    await fn();
  } catch (e) {
    $('#error').textContent = e instanceof Error ? e.message : String(e);
  }
}

async function logout(): Promise<void> {
  client.close();
  await session.logout().catch(() => undefined);
  open = null;
  rooms.clear();
  showAuth();
}

// --- rooms and conversations ------------------------------------------------------------

async function loadRooms(): Promise<void> {
  const page = await session.api<RoomPageDto>('GET', '/rooms?limit=200');
  rooms.clear();
  for (const r of page.items) if (r.kind !== 'conversation') rooms.set(r.id, r);
  renderRooms();
}

function upsertRoom(room: RoomSummaryDto): void {
  if (room.kind === 'conversation') return;
  rooms.set(room.id, { ...rooms.get(room.id), ...room });
  renderRooms();
}

function renderRooms(): void {
  const admin = session.user.role === 'admin';
  $('#rooms').replaceChildren(
    ...[...rooms.values()].map((r) =>
      h(
        'li',
        { class: r.id === open?.id ? 'active' : '', attrs: { 'data-room': r.name } },
        h(
          'button',
          { class: 'link', on: { click: () => void act(() => openRoom(r.id, r.name)) } },
          r.kind === 'direct' ? '@ ' : '# ',
          r.name,
        ),
        r.unreadCount > 0 &&
          h('span', { class: 'badge', attrs: { 'data-testid': 'unread' } }, r.unreadCount),
        admin &&
          r.kind === 'group' &&
          h(
            'button',
            {
              class: 'danger',
              title: 'Delete room',
              on: {
                click: () =>
                  confirm(`Delete room ${r.name} for everyone?`) &&
                  void act(() => session.api('DELETE', `/rooms/${r.id}`)),
              },
            },
            '×',
          ),
      ),
    ),
  );
}

async function loadConversations(): Promise<void> {
  const page = await session.api<ConversationPageDto>('GET', '/conversations').catch(() => null);
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
                  await session.api('DELETE', `/conversations/${c.id}`);
                  if (open?.id === c.id) closeRoom();
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

async function loadPersonas(): Promise<void> {
  const page = await session.api<PersonaPageDto>('GET', '/personas?limit=200').catch(() => null);
  const select = $<HTMLSelectElement>('#persona-select');
  personas.clear();
  select.replaceChildren(
    ...(page?.items ?? []).map((p) => {
      personas.set(p.id, p.handle);
      return h('option', { value: p.id }, `${p.displayName} (@${p.handle})`);
    }),
  );
}

// --- the open room ---------------------------------------------------------------------

async function openRoom(roomId: string, name: string): Promise<void> {
  if (open) client.forget(open.id);
  const joined = await client.join(roomId);
  open = {
    id: roomId,
    room: joined.room,
    members: new Map(joined.members.map((m) => [m.userId, m])),
    online: new Set(joined.online),
    typing: new Map(),
    oldestId: joined.messages[0]?.id ?? null,
    hasMoreBefore: joined.hasMore,
    lastTypingSent: 0,
  };
  streams.clear();
  shown.clear();
  const input = h('input', {
    name: 'message',
    placeholder: `Message ${name}`,
    autocomplete: 'off',
    attrs: { maxlength: '4000' },
  });
  input.addEventListener('input', () => {
    if (!open || !input.value || Date.now() - open.lastTypingSent < 2000) return;
    open.lastTypingSent = Date.now();
    void client.request('typing.start', { roomId }).catch(() => undefined);
  });
  $('#room').replaceChildren(
    h(
      'div',
      { class: 'room-head' },
      h('h2', { attrs: { 'data-testid': 'room-title' } }, name),
      h('ul', { class: 'members', attrs: { id: 'members' } }),
    ),
    h(
      'button',
      { attrs: { id: 'older' }, on: { click: () => void act(loadOlder) } },
      'Load older messages',
    ),
    h('ol', { class: 'messages', attrs: { id: 'messages', 'data-testid': 'messages' } }),
    h('p', { class: 'typing', attrs: { id: 'typing' } }),
    h(
      'form',
      {
        class: 'composer',
        on: {
          submit: (ev) => {
            ev.preventDefault();
            const content = input.value.trim();
            if (!content) return;
            input.value = '';
            open!.lastTypingSent = 0;
            void client.request('typing.stop', { roomId }).catch(() => undefined);
            void act(async () => showMessage(await client.send(roomId, content)));
          },
        },
      },
      input,
      h('button', { type: 'submit' }, 'Send'),
    ),
  );
  for (const m of joined.messages) showMessage(m);
  renderMembers();
  updateOlderButton();
  renderRooms();
  markRead(joined.messages);
  input.focus();
}

function closeRoom(): void {
  if (open) client.forget(open.id);
  open = null;
  $('#room').replaceChildren(h('p', { class: 'hint' }, 'Pick a room.'));
  renderRooms();
}

async function loadOlder(): Promise<void> {
  if (!open || open.oldestId === null) return;
  const room = open;
  const page = await client.request('history.fetch', {
    roomId: room.id,
    before: room.oldestId!,
    limit: PAGE,
  });
  const list = $('#messages');
  const height = list.scrollHeight;
  for (const m of [...page.items].reverse()) {
    shown.set(m.id, m);
    list.prepend(renderMessage(m));
  }
  room.oldestId = page.items[0]?.id ?? room.oldestId;
  room.hasMoreBefore = page.hasMore;
  list.scrollTop += list.scrollHeight - height; // keep the view where it was
  updateOlderButton();
}

function updateOlderButton(): void {
  const older = document.getElementById('older');
  if (older) older.hidden = !open?.hasMoreBefore;
}

function renderMembers(): void {
  if (!open) return;
  $('#members').replaceChildren(
    ...[...open.members.values()].map((m) =>
      h(
        'li',
        {
          class: open!.online.has(m.userId) ? 'online' : 'offline',
          attrs: { 'data-member': m.username },
        },
        m.displayName ?? m.username,
      ),
    ),
  );
}

function renderTyping(): void {
  const names = [...(open?.typing.values() ?? [])];
  const el = document.getElementById('typing');
  if (el)
    el.textContent = names.length
      ? `${names.join(', ')} ${names.length > 1 ? 'are' : 'is'} typing…`
      : '';
}

/** Inserts or replaces a message in the open room's list, in id order. */
function showMessage(m: MessageDto): void {
  if (!open || m.roomId !== open.id) return;
  const list = document.getElementById('messages');
  if (!list) return;
  shown.set(m.id, m);
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
  if (atBottom || m.author?.id === session.user.id) list.scrollTop = list.scrollHeight;
}

function renderMessage(m: MessageDto): HTMLLIElement {
  const mine = m.author?.kind === 'user' && m.author.id === session.user.id;
  const author = m.author
    ? (m.author.displayName ?? m.author.username ?? `@${m.author.handle}`)
    : '';
  const text = h(
    'span',
    { class: 'text', attrs: { 'data-testid': 'text' } },
    m.deletedAt ? 'message deleted' : (m.content ?? ''),
  );
  const li = h(
    'li',
    {
      class: `msg ${m.role}${m.deletedAt ? ' deleted' : ''}${mine ? ' mine' : ''}`,
      attrs: { 'data-id': String(m.id) },
    },
    author && h('span', { class: 'author' }, author),
    timestamp(m.createdAt),
    text,
    m.editedAt && !m.deletedAt && h('span', { class: 'meta' }, ' (edited)'),
    m.finishReason &&
      m.finishReason !== 'stop' &&
      h('span', { class: 'meta' }, ` (${m.finishReason})`),
  );
  if (m.deletedAt || m.role === 'system') return li;
  const reactions = h('span', { class: 'reactions' });
  for (const emoji of REACTIONS) {
    const r = m.reactions.find((x) => x.emoji === emoji);
    const me = r?.userIds.includes(session.user.id) ?? false;
    reactions.append(
      h(
        'button',
        {
          class: `reaction${me ? ' me' : ''}`,
          title: me ? 'Take back' : 'React',
          on: {
            click: () =>
              void act(() =>
                client.request(me ? 'reaction.remove' : 'reaction.add', { messageId: m.id, emoji }),
              ),
          },
        },
        emoji,
        r ? ` ${r.count}` : '',
      ),
    );
  }
  li.append(reactions);
  if (mine) {
    li.append(
      h('button', { class: 'small', on: { click: () => editInPlace(li, text, m) } }, 'Edit'),
      h(
        'button',
        {
          class: 'small danger',
          on: {
            click: () =>
              confirm('Delete this message?') &&
              void act(() => client.request('message.delete', { messageId: m.id })),
          },
        },
        'Delete',
      ),
    );
  }
  return li;
}

/** The message's time in the reader's local time zone (the date too when not today). */
function timestamp(at: Date | string): HTMLElement {
  const d = new Date(at);
  const today = d.toDateString() === new Date().toDateString();
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return h(
    'time',
    {
      class: 'meta time',
      title: d.toLocaleString(),
      attrs: { datetime: d.toISOString(), 'data-testid': 'time' },
    },
    today ? time : `${d.toLocaleDateString()} ${time}`,
  );
}

function editInPlace(li: HTMLElement, text: HTMLElement, m: MessageDto): void {
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
              await client.request('message.edit', { messageId: m.id, content: input.value }),
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

let readTimer: ReturnType<typeof setTimeout> | undefined;
/** Marks the open room read up to its newest message (debounced). */
function markRead(messages: MessageDto[]): void {
  const newest = messages.at(-1);
  if (!open || !newest) return;
  const roomId = open.id;
  clearTimeout(readTimer);
  readTimer = setTimeout(() => {
    void client.request('read.mark', { roomId, messageId: newest.id }).then(
      () => {
        const r = rooms.get(roomId);
        if (r && r.unreadCount) upsertRoom({ ...r, unreadCount: 0 });
      },
      () => undefined,
    );
  }, 300);
}

// --- live events --------------------------------------------------------------------------

function wireEvents(): void {
  const conn = $('#conn');
  client.on('connection', ({ state }) => {
    conn.textContent =
      state === 'connected' ? 'online' : state === 'disconnected' ? 'reconnecting…' : 'offline';
    conn.className = state;
  });
  conn.textContent = 'online';
  conn.className = 'connected';

  client.on('message.created', (m) => {
    if (open?.id === m.roomId) {
      showMessage(m);
      markRead([m]);
      if (m.author) open.typing.delete(m.author.id);
      renderTyping();
    } else {
      const r = rooms.get(m.roomId);
      if (r && m.author?.id !== session.user.id && m.role !== 'system')
        upsertRoom({ ...r, unreadCount: r.unreadCount + 1, lastMessage: m });
    }
  });
  client.on('message.updated', showMessage);
  client.on('message.deleted', showMessage);
  client.on('reaction.updated', (e) => {
    const m = shown.get(e.messageId);
    if (m) showMessage({ ...m, version: e.version, reactions: e.reactions });
  });
  client.on('typing', (e) => {
    if (!open || e.roomId !== open.id) return;
    if (e.typing) open.typing.set(e.userId, e.username);
    else open.typing.delete(e.userId);
    renderTyping();
  });
  client.on('presence.changed', (e) => {
    if (!open) return;
    if (e.online) open.online.add(e.userId);
    else open.online.delete(e.userId);
    renderMembers();
  });
  client.on('member.joined', (e) => {
    if (open?.id !== e.roomId) return;
    open.members.set(e.user.id, {
      userId: e.user.id,
      username: e.user.username,
      displayName: e.user.displayName,
      role: 'member',
      joinedAt: new Date(),
    });
    open.online.add(e.user.id);
    renderMembers();
  });
  client.on('member.left', (e) => {
    if (e.userId === session.user.id) return removeRoom(e.roomId);
    if (open?.id !== e.roomId) return;
    open.members.delete(e.userId);
    renderMembers();
  });
  client.on('room.created', (r) =>
    upsertRoom({ unreadCount: 0, lastReadMessageId: 0, lastMessage: null, ...r }),
  );
  client.on('room.updated', (r) => rooms.has(r.id) && upsertRoom({ ...rooms.get(r.id)!, ...r }));
  client.on('room.deleted', ({ roomId }) => removeRoom(roomId));
  client.on('room.resynced', (r) => {
    if (open?.id !== r.room.id) return;
    open.online = new Set(r.online);
    renderMembers();
  });
  client.on('persona.stream.start', streamStart);
  client.on('persona.stream.delta', (e) => {
    const el = streams.get(e.messageId);
    if (el) el.textContent += e.delta;
  });
  client.on('persona.stream.end', (e) => {
    const el = streams.get(e.messageId);
    streams.delete(e.messageId);
    el?.closest('li')?.remove();
    if (e.message) showMessage(e.message);
  });
  client.on('session.revoked', (e) => {
    if (e.reason !== 'token_expired') showAuth(`Signed out: ${e.reason}`);
  });
}

function streamStart(e: ServerEvents['persona.stream.start']): void {
  if (open?.id !== e.roomId) return;
  const text = h('span', { class: 'text' });
  streams.set(e.messageId, text);
  // Only whoever triggered the reply, or an admin, may stop it: others get no Stop button.
  const trigger = e.replyToId === null ? undefined : shown.get(e.replyToId);
  const mayStop = session.user.role === 'admin' || trigger?.author?.id === session.user.id;
  const cancel =
    mayStop &&
    h(
      'button',
      {
        class: 'small',
        on: {
          click: () => void act(() => client.request('persona.cancel', { messageId: e.messageId })),
        },
      },
      'Stop',
    );
  $('#messages').append(
    h(
      'li',
      { class: 'msg assistant streaming', attrs: { 'data-stream': e.messageId } },
      h('span', { class: 'author' }, `@${personas.get(e.personaId) ?? 'persona'}`),
      text,
      cancel,
    ),
  );
}

function removeRoom(roomId: string): void {
  rooms.delete(roomId);
  if (open?.id === roomId) closeRoom();
  else renderRooms();
}

// Surface unexpected failures instead of failing silently.
window.addEventListener('unhandledrejection', (ev) => {
  const reason: unknown = ev.reason;
  const el = document.getElementById('error');
  if (el)
    el.textContent =
      reason instanceof ApiError || reason instanceof Error ? reason.message : String(reason);
});
