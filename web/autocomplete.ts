/**
 * Mention autocomplete for a message box: `@` and the start of a name lists the open room's
 * members (and `@here`, `@room`) above the box; ↑/↓ pick, Enter or Tab (or a click/tap) insert
 * `@username `, Escape closes.
 */
import { h } from './dom';
import { me, state } from './state';

const MAX = 8;
/** The `@prefix` being typed just before the caret (the server's token rule, see mentions.ts). */
const TYPING = /(?:^|[^\p{L}\p{N}_.@/-])@([A-Za-z0-9_.-]*)$/u;

interface Choice {
  name: string;
  hint: string;
}

export function attachMentions(field: HTMLInputElement, form: HTMLFormElement): void {
  const list = h('ul', {
    class: 'autocomplete',
    attrs: { role: 'listbox', 'data-testid': 'mention-list' },
  });
  list.hidden = true;
  form.classList.add('with-autocomplete');
  form.prepend(list);
  let choices: Choice[] = [];
  let selected = 0;
  let start = -1; // where the `@` is

  const close = () => {
    list.hidden = true;
    choices = [];
  };
  const render = () => {
    list.replaceChildren(
      ...choices.map((c, i) =>
        h(
          'li',
          {
            class: i === selected ? 'selected' : '',
            attrs: {
              role: 'option',
              'aria-selected': String(i === selected),
              'data-mention': c.name,
            },
            on: {
              // mousedown, not click: the box keeps its focus (and its caret).
              mousedown: (ev) => {
                ev.preventDefault();
                insert(c.name);
              },
            },
          },
          h('strong', {}, `@${c.name}`),
          c.hint && h('span', { class: 'meta' }, ` ${c.hint}`),
        ),
      ),
    );
    list.hidden = choices.length === 0;
  };
  const insert = (name: string) => {
    const caret = field.selectionStart ?? field.value.length;
    const before = `${field.value.slice(0, start)}@${name} `;
    field.value = before + field.value.slice(caret).replace(/^[A-Za-z0-9_.-]*\s?/, '');
    field.setSelectionRange(before.length, before.length);
    field.dispatchEvent(new Event('input'));
    close();
  };
  const update = () => {
    const caret = field.selectionStart ?? field.value.length;
    const typed = TYPING.exec(field.value.slice(0, caret));
    if (!typed || !state.open) return close();
    start = caret - typed[1].length - 1;
    choices = candidates(typed[1].toLowerCase());
    selected = 0;
    render();
  };

  field.addEventListener('input', update);
  field.addEventListener('click', update);
  field.addEventListener('blur', close);
  field.addEventListener('keydown', (ev) => {
    if (list.hidden) return;
    if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
      const step = ev.key === 'ArrowDown' ? 1 : -1;
      selected = (selected + step + choices.length) % choices.length;
      render();
    } else if (ev.key === 'Enter' || ev.key === 'Tab') insert(choices[selected].name);
    else if (ev.key === 'Escape') close();
    else return;
    ev.preventDefault(); // Enter inserts instead of sending
  });
}

/** Members whose username or display name starts with `prefix`, then the two groups. */
function candidates(prefix: string): Choice[] {
  const members = [...(state.open?.members.values() ?? [])]
    .filter((m) => m.userId !== me().id)
    .filter(
      (m) =>
        m.username.toLowerCase().startsWith(prefix) ||
        (m.displayName ?? '').toLowerCase().startsWith(prefix),
    )
    .sort((a, b) => a.username.localeCompare(b.username))
    .map((m) => ({ name: m.username, hint: m.displayName ?? '' }));
  const groups = [
    { name: 'here', hint: 'members online now' },
    { name: 'room', hint: 'every member (moderators)' },
  ].filter((g) => g.name.startsWith(prefix));
  return [...members.slice(0, MAX), ...groups];
}
