/**
 * Personas: the sidebar's "talk to" list and the personas screen. Everyone sees the personas
 * and can start a private conversation; admins put them in group rooms and take them out
 * (POST/DELETE /rooms/{id}/personas/{personaId}: admins only).
 */
import type { PersonaDto, PersonaPageDto } from '../src/personas/dto/persona.dto';
import { $, h } from './dom';
import { roomLabel } from './rooms';
import { startConversation } from './shell';
import { isAdmin, state } from './state';
import { act, showScreen } from './ui';

export async function loadPersonas(): Promise<void> {
  const page = await state.session
    .api<PersonaPageDto>('GET', '/personas?limit=200')
    .catch(() => null);
  state.personas.clear();
  for (const p of page?.items ?? []) state.personas.set(p.id, p);
  $<HTMLSelectElement>('#persona-select').replaceChildren(
    ...[...state.personas.values()].map((p) =>
      h('option', { value: p.id }, `${p.displayName} (@${p.handle})`),
    ),
  );
}

export async function showPersonas(): Promise<void> {
  await loadPersonas();
  if (state.open) state.client.forget(state.open.id);
  state.open = null;
  const groups = [...state.rooms.values()].filter((r) => r.kind === 'group');
  const list = h('ul', { class: 'personas', attrs: { 'data-testid': 'personas' } });
  const roomSelect = h(
    'select',
    { name: 'persona-room', attrs: { 'aria-label': 'Room' } },
    ...groups.map((r) => h('option', { value: r.id }, `# ${roomLabel(r)}`)),
  );
  const render = async () => {
    const roomId = isAdmin() ? roomSelect.value : '';
    // Another room chosen: its buttons go at once, so a click while this room's list loads
    // cannot add or remove a persona in the room chosen before.
    if (list.dataset.room !== roomId) list.replaceChildren();
    list.dataset.room = roomId;
    const inRoom = roomId
      ? new Set(
          (await state.session.api<PersonaDto[]>('GET', `/rooms/${roomId}/personas`)).map(
            (p) => p.id,
          ),
        )
      : new Set<string>();
    if (list.dataset.room !== roomId) return; // a later choice rendered (or will render) instead
    list.replaceChildren(
      ...[...state.personas.values()].map((p) => personaItem(p, roomId, inRoom.has(p.id), render)),
    );
    if (!state.personas.size) list.append(h('li', { class: 'hint' }, 'No personas yet.'));
  };
  roomSelect.addEventListener('change', () => void act(render));
  showScreen(
    h(
      'div',
      { class: 'room-head' },
      h('h2', { attrs: { 'data-testid': 'room-title' } }, 'Personas'),
    ),
    h(
      'p',
      { class: 'hint' },
      'Talk to one privately, or call one with @handle in a room it is in.',
      isAdmin() && groups.length ? ' As an admin, choose which rooms each is in:' : '',
    ),
    isAdmin() && groups.length ? roomSelect : '',
    list,
  );
  await render();
}

function personaItem(
  p: PersonaDto,
  roomId: string,
  present: boolean,
  refresh: () => Promise<void>,
): HTMLLIElement {
  const toggle = async () => {
    await state.session.api(present ? 'DELETE' : 'POST', `/rooms/${roomId}/personas/${p.id}`);
    await refresh();
  };
  return h(
    'li',
    { attrs: { 'data-persona': p.handle } },
    h('strong', {}, p.displayName),
    ` @${p.handle}`,
    !p.enabled && h('span', { class: 'meta' }, ' (disabled)'),
    p.style && h('span', { class: 'meta' }, ` · ${p.style}`),
    ' ',
    p.enabled &&
      h(
        'button',
        { class: 'small', on: { click: () => void act(() => startConversation(p.id)) } },
        'Talk',
      ),
    roomId &&
      h(
        'button',
        {
          class: `small${present ? ' danger' : ''}`,
          attrs: { 'data-testid': present ? 'persona-detach' : 'persona-attach' },
          on: { click: () => void act(toggle) },
        },
        present ? 'Remove from room' : 'Add to room',
      ),
  );
}
