/**
 * Moderation in the demo: who may do what (a hint for the buttons: the server's access policy
 * decides), how a sanction's end reads, and the small inline forms (mute or ban, remove a
 * message with a reason, report a message). Inline forms rather than prompt(): they show the
 * choices (duration, category) and are easy to use on a phone.
 */
import type { MessageDto } from '../client/index';
import type { ReportCategory } from '../src/common/wire';
import type { MemberDto, RoomDto } from '../src/rooms/dto/room.dto';
import { h } from './dom';
import { isAdmin, state } from './state';
import { act } from './ui';

type RoomFacts = Pick<RoomDto, 'kind' | 'myRole'>;

/** Moderates this room: its owner and moderators, and admins (group rooms in the demo). */
export const mayModerate = (room: RoomFacts): boolean =>
  room.kind === 'group' && (isAdmin() || room.myRole === 'owner' || room.myRole === 'moderator');

/** Makes and unmakes moderators: admins and the room's owner. */
export const mayAppoint = (room: RoomFacts): boolean =>
  room.kind === 'group' && (isAdmin() || room.myRole === 'owner');

/** Whether a mute holds now (an expired mute ends without an event). */
export const mutedNow = (m: Pick<MemberDto, 'muted' | 'mutedUntil'>): boolean =>
  m.muted && (m.mutedUntil === null || Date.parse(m.mutedUntil) > Date.now());

/** "until 14:05" (with the date when not today), or "until lifted". */
export function untilText(until: string | null): string {
  if (!until) return 'until lifted';
  const d = new Date(until);
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return `until ${d.toDateString() === new Date().toDateString() ? time : `${d.toLocaleDateString()} ${time}`}`;
}

/** " — reason", or nothing without one. */
export const reasonText = (reason: string | null | undefined): string =>
  reason ? ` — ${reason}` : '';

/** A member's room role (unless plain member) and mute, as small marks after the name. */
export function memberMarks(m: MemberDto): HTMLElement {
  return h(
    'span',
    { class: 'marks' },
    m.role !== 'member' &&
      h('span', { class: `tag role-${m.role}`, attrs: { 'data-testid': 'role' } }, m.role),
    mutedNow(m) &&
      h(
        'span',
        { class: 'tag muted', attrs: { 'data-testid': 'muted' } },
        `muted ${untilText(m.mutedUntil)}`,
      ),
  );
}

/** `details` of a refusal caused by a mute or a ban (SanctionDetails). */
export const sanctionOf = (e: unknown): { reason: string; until: string | null } | null => {
  const d = e instanceof Error && 'details' in e ? e.details : undefined;
  return typeof d === 'object' && d !== null && 'reason' in d && 'until' in d
    ? (d as { reason: string; until: string | null })
    : null;
};

/** What a tombstone says: removed by moderation (with the reason, for those who may see it). */
export function tombstoneText(m: MessageDto): string {
  if (!m.removedByModeration) return 'message deleted';
  return `removed by moderation${m.removalReason ? `: ${m.removalReason}` : ''}`;
}

const DURATIONS: [string, number | undefined][] = [
  ['10 minutes', 600],
  ['1 hour', 3600],
  ['1 day', 86400],
  ['until lifted', undefined],
];

export function durationSelect(name: string): HTMLSelectElement {
  return h(
    'select',
    { name, attrs: { 'aria-label': 'For how long' } },
    ...DURATIONS.map(([label, sec]) => h('option', { value: sec ? String(sec) : '' }, label)),
  );
}

export const durationOf = (select: HTMLSelectElement): number | undefined =>
  select.value ? Number(select.value) : undefined;

export const textField = (name: string, placeholder: string, maxLength: number) =>
  h('input', { name, placeholder, attrs: { maxlength: String(maxLength) } });

/** A small button that hands itself to `click` (which may put a form in its place). */
export function toolButton(
  label: string,
  testid: string,
  click: (self: HTMLButtonElement) => void,
  cls = 'small',
): HTMLButtonElement {
  const b: HTMLButtonElement = h(
    'button',
    { class: cls, attrs: { 'data-testid': testid }, on: { click: () => click(b) } },
    label,
  );
  return b;
}

/**
 * A small form put in place of `anchor`: submitting runs `run` (its error goes to the error
 * line) and puts back `anchor`, or what `run` returns; Cancel puts `anchor` back.
 */
function inlineForm(
  anchor: HTMLElement,
  testid: string,
  fields: (HTMLElement | false)[],
  submit: { label: string; cls: string },
  run: () => Promise<Node | void>,
): void {
  const form = h(
    'form',
    {
      class: 'inline-form',
      attrs: { 'data-testid': testid },
      on: {
        submit: (ev) => {
          ev.preventDefault();
          void act(async () => form.replaceWith((await run()) ?? anchor));
        },
      },
    },
    ...fields,
    h('button', { type: 'submit', class: submit.cls }, submit.label),
    h(
      'button',
      { type: 'button', class: 'small', on: { click: () => form.replaceWith(anchor) } },
      'Cancel',
    ),
  );
  anchor.replaceWith(form);
  form.querySelector('input')?.focus();
}

/**
 * Asks how long and why, in place of `anchor`: mute or ban a member, or (without a duration)
 * remove a message.
 */
export function reasonForm(
  anchor: HTMLElement,
  opts: { verb: string; testid: string; duration: boolean },
  run: (reason: string, durationSec?: number) => Promise<unknown>,
): void {
  const duration = opts.duration && durationSelect('duration');
  const reason = textField('reason', 'reason (shown to them)', 500);
  inlineForm(
    anchor,
    opts.testid,
    [duration, reason],
    { label: opts.verb, cls: 'small danger' },
    async () => {
      await run(reason.value.trim(), duration ? durationOf(duration) : undefined);
    },
  );
}

/** Mute or ban a member (POST /rooms/{id}/mutes or /bans). */
export const sanction = (
  kind: 'mutes' | 'bans',
  roomId: string,
  userId: string,
  reason: string,
  durationSec?: number,
) =>
  state.session.api('POST', `/rooms/${roomId}/${kind}`, {
    userId,
    reason,
    ...(durationSec ? { durationSec } : {}),
  });

/** A moderator removes someone's message, with a reason its author will see. */
export const removeButton = (m: MessageDto): HTMLButtonElement =>
  toolButton(
    'Remove',
    'remove',
    (self) =>
      reasonForm(self, { verb: 'Remove', testid: 'remove-form', duration: false }, (reason) =>
        state.client.request('message.delete', { messageId: m.id, reason }),
      ),
    'small danger',
  );

const CATEGORIES: ReportCategory[] = ['spam', 'abuse', 'harassment', 'illegal', 'other'];

/** Report someone's message to the room's moderators: a category and what they should know. */
export const reportButton = (m: MessageDto): HTMLButtonElement =>
  toolButton('Report', 'report', (self) => {
    const category = h(
      'select',
      { name: 'report-category', attrs: { 'aria-label': 'Category' } },
      ...CATEGORIES.map((c) => h('option', { value: c }, c)),
    );
    const text = textField('report-text', 'what should the moderators know?', 1000);
    inlineForm(
      self,
      'report-form',
      [category, text],
      { label: 'Send report', cls: 'small' },
      async () => {
        await state.client.request('message.report', {
          messageId: m.id,
          category: category.value as ReportCategory,
          ...(text.value.trim() ? { text: text.value.trim() } : {}),
        });
        return h('span', { class: 'meta', attrs: { 'data-testid': 'reported' } }, ' reported');
      },
    );
  });
