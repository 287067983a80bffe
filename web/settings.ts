/**
 * Room settings: name, description and visibility (admins: PATCH /rooms/{id} is theirs), the
 * members (a direct message to any of them; role and mute marks; for moderators mute, unmute,
 * ban, and for the owner and admins make or unmake moderators), the bans in force, slow mode
 * (moderators) and archive (admins), the personas' turn-taking (moderators), and leaving the
 * room. Redrawn live by moderation events.
 */
import type { BanListDto } from '../src/moderation/dto/moderation.dto';
import type { PersonaPolicyDto } from '../src/personas/dto/persona-policy.dto';
import type { PersonaDto } from '../src/personas/dto/persona.dto';
import type { MemberDto, MemberPageDto, RoomDto } from '../src/rooms/dto/room.dto';
import { h } from './dom';
import {
  mayAppoint,
  mayModerate,
  memberMarks,
  mutedNow,
  reasonForm,
  reasonText,
  sanction,
  toolButton,
  untilText,
} from './moderation';
import { openRoom } from './room-view';
import { removeRoom, roomLabel, startDirect, upsertRoom } from './rooms';
import { isAdmin, me, state } from './state';
import { act, showScreen } from './ui';

/**
 * Shows the settings screen. `redraw` (live events): only if it is still on screen once loaded
 * and no form of it is open (a mute half typed: the moderator's own action redraws after).
 */
export async function showRoomSettings(
  roomId: string,
  name: string,
  redraw = false,
): Promise<void> {
  const [room, members] = await Promise.all([
    state.session.api<RoomDto>('GET', `/rooms/${roomId}`),
    state.session.api<MemberPageDto>('GET', `/rooms/${roomId}/members?limit=100`),
  ]);
  const moderates = mayModerate(room);
  const [bans, personas] = moderates
    ? await Promise.all([
        state.session.api<BanListDto>('GET', `/rooms/${roomId}/bans`).catch(() => null),
        room.kind === 'group' ? roomPersonas(roomId) : null,
      ])
    : [null, null];
  const stale = state.screen?.kind !== 'settings' || state.screen.roomId !== roomId;
  if (redraw && (stale || document.querySelector('#room .inline-form'))) return;
  if (state.open) state.client.forget(state.open.id);
  state.open = null;
  const editable = isAdmin() && room.kind === 'group';
  const again = () => showRoomSettings(roomId, name);
  showScreen(
    h(
      'div',
      { class: 'room-head' },
      h('h2', { attrs: { 'data-testid': 'room-title' } }, `⚙ ${roomLabel(room)}`),
      h(
        'button',
        {
          class: 'small',
          on: {
            click: () => {
              const known = state.rooms.get(roomId);
              void act(() => openRoom(roomId, known ? roomLabel(known) : name));
            },
          },
        },
        'Back to room',
      ),
    ),
    h(
      'p',
      { class: 'meta', attrs: { 'data-testid': 'room-facts' } },
      `${room.kind} · ${room.visibility} · ${room.memberCount} member${room.memberCount === 1 ? '' : 's'}`,
      room.myRole ? ` · you are ${room.myRole}` : '',
    ),
    room.archivedAt &&
      h(
        'p',
        { class: 'composer-note', attrs: { 'data-testid': 'archived-note' } },
        'This room is archived (read-only)',
      ),
    editable ? settingsForm(room) : room.description && h('p', {}, room.description),
    moderates && moderationForm(room, again),
    personas && personaForm(room, personas, again),
    h('h3', {}, 'Members'),
    h(
      'ul',
      { class: 'member-list', attrs: { 'data-testid': 'member-list' } },
      ...members.items.map((m) => memberRow(room, m, again)),
      members.nextCursor && h('li', { class: 'hint' }, '…and more'),
    ),
    !!bans?.items.length &&
      h(
        'div',
        {},
        h('h3', {}, 'Banned'),
        h(
          'ul',
          { class: 'member-list', attrs: { 'data-testid': 'ban-list' } },
          ...bans.items.map((b) =>
            h(
              'li',
              { attrs: { 'data-ban-row': b.username } },
              b.username,
              h('span', { class: 'meta' }, ` ${untilText(b.until)}${reasonText(b.reason)} `),
              h(
                'button',
                {
                  class: 'small',
                  on: {
                    click: () =>
                      void act(async () => {
                        await state.session.api('DELETE', `/rooms/${roomId}/bans/${b.userId}`);
                        await again();
                      }),
                  },
                },
                'Unban',
              ),
            ),
          ),
        ),
      ),
    room.kind === 'group' &&
      room.joined &&
      h(
        'button',
        {
          class: 'danger leave',
          attrs: { 'data-testid': 'leave-room' },
          on: {
            click: () =>
              confirm(`Leave ${room.name}?`) &&
              void act(async () => {
                await state.session.api('POST', `/rooms/${roomId}/leave`);
                removeRoom(roomId);
              }),
          },
        },
        'Leave room',
      ),
  );
  state.screen = { kind: 'settings', roomId, name };
}

/**
 * One member: name, role and mute marks, "Message", and what the viewer may do to them. The
 * buttons follow the server's rules (nobody acts on themselves or the owner; only the owner or
 * an admin on a moderator); the server decides all the same.
 */
function memberRow(room: RoomDto, m: MemberDto, again: () => Promise<void>): HTMLLIElement {
  const self = m.userId === me().id;
  const api = (method: string, path: string, body?: unknown) =>
    act(async () => {
      await state.session.api(method, `/rooms/${room.id}${path}`, body);
      await again();
    });
  const sanctionable =
    !self && m.role !== 'owner' && mayModerate(room) && (m.role === 'member' || mayAppoint(room));
  const ask = (kind: 'mutes' | 'bans', verb: string) => (b: HTMLButtonElement) =>
    reasonForm(
      b,
      { verb, testid: `${verb.toLowerCase()}-form`, duration: true },
      async (reason, sec) => {
        await sanction(kind, room.id, m.userId, reason, sec);
        await again();
      },
    );
  return h(
    'li',
    { attrs: { 'data-member-row': m.username } },
    m.displayName ?? m.username,
    ' ',
    memberMarks(m),
    !self &&
      room.kind !== 'direct' &&
      h(
        'button',
        {
          class: 'small',
          attrs: { 'data-testid': 'dm' },
          on: { click: () => void act(() => startDirect(m.userId)) },
        },
        'Message',
      ),
    sanctionable &&
      (mutedNow(m)
        ? toolButton('Unmute', 'unmute', () => void api('DELETE', `/mutes/${m.userId}`))
        : toolButton('Mute', 'mute', ask('mutes', 'Mute'))),
    sanctionable && toolButton('Ban', 'ban', ask('bans', 'Ban')),
    !self &&
      m.role !== 'owner' &&
      mayAppoint(room) &&
      toolButton(
        m.role === 'moderator' ? 'Remove moderator' : 'Make moderator',
        'set-role',
        () =>
          void api('PUT', `/members/${m.userId}/role`, {
            role: m.role === 'moderator' ? 'member' : 'moderator',
          }),
      ),
  );
}

const SLOW_MODE_SECONDS = [0, 10, 30, 60, 300];

/** Slow mode (moderators) and archive (admins). */
function moderationForm(room: RoomDto, again: () => Promise<void>): HTMLElement {
  const current = Math.round(room.slowModeMs / 1000);
  const seconds = h(
    'select',
    { name: 'slow-mode', attrs: { 'aria-label': 'Slow mode' } },
    ...[...new Set([...SLOW_MODE_SECONDS, current])]
      .sort((a, b) => a - b)
      .map((s) => {
        const option = h('option', { value: String(s) }, s ? `one message per ${s} s` : 'off');
        option.selected = s === current;
        return option;
      }),
  );
  seconds.addEventListener(
    'change',
    () =>
      void act(async () => {
        await state.session.api('PUT', `/rooms/${room.id}/slow-mode`, {
          seconds: Number(seconds.value),
        });
        await again();
      }),
  );
  return h(
    'div',
    { class: 'settings', attrs: { 'data-testid': 'moderation' } },
    h('h3', {}, 'Moderation'),
    h('label', {}, 'Slow mode (moderators are exempt) ', seconds),
    isAdmin() &&
      h(
        'div',
        {},
        h(
          'button',
          {
            class: room.archivedAt ? 'small' : 'small danger',
            attrs: { 'data-testid': 'archive' },
            on: {
              click: () =>
                (room.archivedAt ||
                  confirm(`Archive ${room.name}? It becomes read-only for everyone.`)) &&
                void act(async () => {
                  await state.session.api(
                    room.archivedAt ? 'DELETE' : 'POST',
                    `/rooms/${room.id}/archive`,
                  );
                  await again();
                }),
            },
          },
          room.archivedAt ? 'Unarchive (writable again)' : 'Archive (read-only)',
        ),
      ),
  );
}

/**
 * "Saved" outlives a redraw: the save's own `room.updated` event redraws this screen, before or
 * after the PATCH answers, so the confirmation is kept here and shown on whichever form is up.
 */
let savedFlash: { roomId: string; until: number } | null = null;
const SAVED_SHOWN_MS = 5000;

function settingsForm(room: RoomDto): HTMLFormElement {
  const name = h('input', { name: 'settings-name', value: room.name, required: true });
  const description = h('textarea', { attrs: { name: 'settings-description', rows: '3' } });
  description.value = room.description;
  const visibility = h(
    'select',
    { name: 'settings-visibility' },
    ...['public', 'private'].map((v) => {
      const option = h('option', { value: v }, v);
      option.selected = v === room.visibility;
      return option;
    }),
  );
  const saved = h('span', { class: 'meta', attrs: { 'data-testid': 'settings-saved' } });
  if (savedFlash?.roomId === room.id && Date.now() < savedFlash.until) saved.textContent = 'Saved';
  return h(
    'form',
    {
      class: 'settings',
      attrs: { 'data-testid': 'room-settings-form' },
      on: {
        submit: (ev) => {
          ev.preventDefault();
          saved.textContent = '';
          savedFlash = null;
          void act(async () => {
            const updated = await state.session.api<RoomDto>('PATCH', `/rooms/${room.id}`, {
              name: name.value,
              description: description.value,
              visibility: visibility.value,
            });
            const known = state.rooms.get(room.id);
            if (known) upsertRoom({ ...known, ...updated });
            const title = document.querySelector('[data-testid=room-title]');
            if (title) title.textContent = `⚙ ${roomLabel(updated)}`;
            savedFlash = { roomId: room.id, until: Date.now() + SAVED_SHOWN_MS };
            const shown = document.querySelector('[data-testid=settings-saved]');
            (shown ?? saved).textContent = 'Saved';
          });
        },
      },
    },
    h('label', {}, 'Name ', name),
    h('label', {}, 'Description ', description),
    h('label', {}, 'Visibility ', visibility),
    h('div', {}, h('button', { type: 'submit' }, 'Save'), ' ', saved),
  );
}

/** The room's personas and its turn-taking policy (null when they cannot be read). */
async function roomPersonas(
  roomId: string,
): Promise<{ list: PersonaDto[]; policy: PersonaPolicyDto } | null> {
  const [list, policy] = await Promise.all([
    state.session.api<PersonaDto[]>('GET', `/rooms/${roomId}/personas`),
    state.session.api<PersonaPolicyDto>('GET', `/rooms/${roomId}/persona-policy`),
  ]).catch(() => [null, null]);
  return list && policy ? { list, policy } : null;
}

const TURN_POLICIES: [PersonaPolicyDto['policy'], string][] = [
  ['mention', 'only when @mentioned'],
  ['round-robin', 'in turn, one per message'],
  ['auto', 'when it fits (by talkativeness)'],
  ['director', 'the model picks who speaks'],
];

/**
 * Moderators: who answers messages that @mention no persona (the room's turn-taking policy),
 * and whether personas answer each other (under the server's loop guards, shown).
 */
function personaForm(
  room: RoomDto,
  { list, policy }: { list: PersonaDto[]; policy: PersonaPolicyDto },
  again: () => Promise<void>,
): HTMLElement {
  const put = (body: Partial<PersonaPolicyDto>) =>
    void act(async () => {
      await state.session.api('PUT', `/rooms/${room.id}/persona-policy`, body);
      await again();
    });
  const select = h(
    'select',
    { name: 'persona-policy', attrs: { 'aria-label': 'Persona turn-taking' } },
    ...TURN_POLICIES.map(([value, label]) => {
      const option = h('option', { value }, label);
      option.selected = value === policy.policy;
      return option;
    }),
  );
  select.addEventListener('change', () =>
    put({ policy: select.value as PersonaPolicyDto['policy'] }),
  );
  const crossTalk = h('input', { type: 'checkbox', attrs: { name: 'cross-talk' } });
  crossTalk.checked = policy.crossTalk;
  crossTalk.addEventListener('change', () => put({ crossTalk: crossTalk.checked }));
  const g = policy.effective;
  return h(
    'div',
    { class: 'settings', attrs: { 'data-testid': 'persona-policy' } },
    h('h3', {}, 'Personas'),
    h(
      'p',
      { class: 'meta' },
      list.length
        ? list.map((p) => `${p.displayName} (@${p.handle})`).join(', ')
        : 'No personas in this room (admins add them on the Personas screen).',
    ),
    h('label', {}, 'Personas answer ', select),
    h('label', {}, crossTalk, ' Personas may answer each other'),
    policy.crossTalk &&
      h(
        'p',
        { class: 'hint' },
        `At most ${g.maxConsecutiveTurns} persona turns in a row without a person, ` +
          `${g.chainBudget} persona-to-persona replies per ${Math.round(g.chainBudgetWindowMs / 60000)} min, ` +
          `each persona silent ${g.cooldownMs / 1000} s before another calls it.`,
      ),
  );
}
