/**
 * The message box of the open room: send on Enter, typing indicator while typing, mention
 * autocomplete (autocomplete.ts), files (📎 and pasted images, attachments.ts), and why one
 * cannot write (archived, muted, slow mode, the word filter) above it, kept current from events
 * and refusals.
 */
import { ParlorError } from '../client/index';
import { attachFiles, AttachTray } from './attachments';
import { attachMentions } from './autocomplete';
import { h } from './dom';
import { showMessage } from './messages';
import { mayModerate, mutedNow, reasonText, sanctionOf, untilText } from './moderation';
import { state } from './state';
import { act } from './ui';

export function composer(
  roomId: string,
  name: string,
): { form: HTMLFormElement; field: HTMLInputElement; tray: HTMLElement } {
  const { client } = state;
  const tray = new AttachTray(roomId);
  const box = messageBox({
    name: 'message',
    placeholder: `Message ${name}`,
    button: 'Send',
    testid: 'send',
    ready: () => (state.open?.sendAfter ?? 0) <= Date.now(),
    hasFiles: () => tray.pending,
    send: (content, field) => {
      if (state.open) state.open.lastTypingSent = 0;
      void client.request('typing.stop', { roomId }).catch(() => undefined);
      void act(() => send(roomId, content, field, tray));
    },
  });
  const { field } = box;
  attachFiles(box.form, field, tray);
  field.addEventListener('input', () => {
    const open = state.open;
    if (open?.blocked) {
      open.blocked = null;
      renderComposerState();
    }
    if (!open || !field.value || Date.now() - open.lastTypingSent < 2000) return;
    open.lastTypingSent = Date.now();
    void client.request('typing.start', { roomId }).catch(() => undefined);
  });
  return { ...box, tray: tray.el };
}

/**
 * A message box and its button (the room's, the thread's): Enter hands the trimmed text to
 * `send` (unless `ready` says not yet) and empties the box; `@` names autocomplete. The text
 * may be empty when `hasFiles` says files go with it.
 */
export function messageBox(opts: {
  name: string;
  placeholder: string;
  button: string;
  testid: string;
  send: (content: string, field: HTMLInputElement) => void;
  ready?: () => boolean;
  hasFiles?: () => boolean;
}): { form: HTMLFormElement; field: HTMLInputElement } {
  const field = h('input', {
    name: opts.name,
    placeholder: opts.placeholder,
    autocomplete: 'off',
    attrs: { maxlength: '4000' },
  });
  const form = h(
    'form',
    {
      class: 'composer',
      on: {
        submit: (ev) => {
          ev.preventDefault();
          const content = field.value.trim();
          if ((!content && !opts.hasFiles?.()) || opts.ready?.() === false) return;
          field.value = '';
          opts.send(content, field);
        },
      },
    },
    field,
    h('button', { type: 'submit', attrs: { 'data-testid': opts.testid } }, opts.button),
  );
  attachMentions(field, form);
  return { form, field };
}

/**
 * Sends once, so a refusal shows at once: slow mode (RATE_LIMITED) counts down, the word filter
 * and a mute say why, and the text goes back into the box (the files into the tray). Only a
 * lost connection is retried (under the same clientMsgId, so never twice). Uploads still
 * running are waited for.
 */
async function send(
  roomId: string,
  content: string,
  field: HTMLInputElement,
  tray: AttachTray,
): Promise<void> {
  const clientMsgId = crypto.randomUUID();
  const attachmentIds = (await tray.take()).map((a) => a.id);
  if (!content && !attachmentIds.length) return; // every upload was refused: nothing to send
  try {
    const sent = await state.client
      .send(roomId, content, { clientMsgId, maxAttempts: 1, attachmentIds })
      .catch((e: unknown) => {
        if (e instanceof ParlorError && e.transient && e.code !== 'RATE_LIMITED')
          return state.client.send(roomId, content, { clientMsgId, attachmentIds });
        throw e;
      });
    showMessage(sent);
    const open = state.open;
    const slowMs = open?.room.slowModeMs ?? 0; // no room open: 0
    if (open?.id === roomId && slowMs > 0 && !mayModerate(open.room)) {
      open.sendAfter = Date.now() + slowMs;
      renderComposerState();
    }
  } catch (e) {
    tray.restore();
    if (state.open?.id === roomId && !field.value) field.value = content;
    if (!(e instanceof ParlorError) || !refused(roomId, e)) throw e;
  }
}

/** Turns a refusal into composer state; false when it is not one of ours (shown as an error). */
function refused(roomId: string, e: ParlorError): boolean {
  const open = state.open;
  if (open?.id !== roomId) return false;
  if (e.code === 'RATE_LIMITED' && e.retryAfterMs) {
    open.sendAfter = Date.now() + e.retryAfterMs;
    const slow = (e.details as { slowModeMs?: number } | undefined)?.slowModeMs;
    if (slow) open.room = { ...open.room, slowModeMs: slow }; // slow mode, not the rate limit
  } else if (e.code === 'CONTENT_BLOCKED')
    open.blocked = e.message; // names the rule
  else if (e.code === 'FORBIDDEN' && sanctionOf(e)) open.myMute = sanctionOf(e);
  else if (e.code === 'FORBIDDEN' && /archived/i.test(e.message))
    open.room = { ...open.room, archivedAt: open.room.archivedAt ?? new Date() };
  else return false;
  renderComposerState();
  return true;
}

const HOUR = 3_600_000; // setTimeout cannot wait for a year: look again each hour
let tick: ReturnType<typeof setTimeout> | undefined;

/**
 * The line above the box and whether it may send, from the open room's state. Redrawn every
 * second while slow mode counts down, and when a mute ends by itself.
 */
export function renderComposerState(): void {
  clearTimeout(tick);
  const open = state.open;
  const note = document.getElementById('composer-note');
  const form = document.querySelector<HTMLFormElement>('#room form.composer');
  if (!open || !note || !form) return;
  const now = Date.now();
  if (open.myMute && !mutedNow({ muted: true, mutedUntil: open.myMute.until })) open.myMute = null;
  const waitMs = open.sendAfter - now;
  let text = '';
  let readOnly = false;
  if (open.room.archivedAt) {
    text = 'This room is archived (read-only)';
    readOnly = true;
  } else if (open.myMute) {
    text = `Muted by a moderator ${untilText(open.myMute.until)}${reasonText(open.myMute.reason)}`;
    readOnly = true;
    const endsIn = open.myMute.until ? Date.parse(open.myMute.until) - now : Infinity;
    if (endsIn !== Infinity) tick = setTimeout(renderComposerState, Math.min(endsIn + 50, HOUR));
  } else if (waitMs > 0) {
    const what = open.room.slowModeMs ? 'Slow mode' : 'Too fast';
    text = `${what}: you can send again in ${Math.ceil(waitMs / 1000)} s`;
    tick = setTimeout(renderComposerState, ((waitMs - 1) % 1000) + 1);
  } else if (open.blocked) {
    text = `${open.blocked}: change the text and send again`;
  }
  note.textContent = text;
  note.hidden = !text;
  for (const el of form.querySelectorAll<HTMLInputElement | HTMLButtonElement>('input, button'))
    el.disabled = readOnly || (el.type === 'submit' && waitMs > 0);
}
