/** The page's frame: the error line, the main pane's screens and the phone sidebar. */
import { $, h } from './dom';
import { state } from './state';

/** Runs a user action and shows its error, if any, in the error line. */
export async function act(fn: () => Promise<unknown>): Promise<void> {
  $('#error').textContent = '';
  try {
    await fn();
  } catch (e) {
    $('#error').textContent = e instanceof Error ? e.message : String(e);
  }
}

/** A notice in the error line (e.g. "You were banned from …"), until the next action. */
export function notice(text: string): void {
  $('#error').textContent = text;
}

/** Puts a screen (a room, its settings, the personas) in the main pane. */
export function showScreen(...children: (Node | string | false | null | undefined)[]): void {
  state.screen = null;
  $('#room').replaceChildren(...children.filter((c): c is Node | string => !!c));
  setSidebar(false);
}

export function showHint(): void {
  state.screen = null;
  $('#room').replaceChildren(h('p', { class: 'hint' }, 'Pick a room.'));
  setSidebar(true);
}

/** At phone width the sidebar slides over the room: open to pick, closed to read and write. */
export function setSidebar(open: boolean): void {
  const layout = document.querySelector('.layout');
  if (!layout) return;
  layout.classList.toggle('sidebar-open', open);
  document
    .querySelector('[data-testid=sidebar-toggle]')
    ?.setAttribute('aria-expanded', String(open));
}

export function toggleSidebar(): void {
  setSidebar(!document.querySelector('.layout')?.classList.contains('sidebar-open'));
}
