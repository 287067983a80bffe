/**
 * Mentions in a message's text, highlighted from what the server resolved (`mentions`,
 * `mentionsHere`, `mentionsRoom`; never guessed from the text alone): an unknown `@name`, or an
 * `@room` said by someone who may not, stays plain text. Mentions of me are stressed more.
 */
import type { MessageDto } from '../client/index';
import { h } from './dom';
import { me } from './state';

/** The server's token rule (src/messages/mentions.ts): not inside a word, path or address. */
const TOKEN = /(?<![\p{L}\p{N}_.@/-])@([A-Za-z0-9_.-]{1,64})(?![\p{L}\p{N}])/gu;

const mine = (m: MessageDto) => m.author?.kind === 'user' && m.author.id === me().id;

/** Whether the message calls me: by name, or `@here`/`@room` (not when I wrote it). */
export function mentionsMe(m: MessageDto): boolean {
  if (mine(m) || m.deletedAt) return false;
  const id = me().id;
  return !!(m.mentionsHere || m.mentionsRoom || m.mentions?.some((x) => x.userId === id));
}

/** The message's text as text nodes, each resolved mention in a `<mark>`. */
export function mentionText(m: MessageDto): (Node | string)[] {
  const text = m.content ?? '';
  if (!text.includes('@')) return [text];
  const names = new Map((m.mentions ?? []).map((x) => [x.username.toLowerCase(), x.userId]));
  const out: (Node | string)[] = [];
  let last = 0;
  for (const match of text.matchAll(TOKEN)) {
    const hit = resolve(match[1].toLowerCase(), names, m);
    if (!hit) continue;
    const start = match.index;
    const end = start + 1 + hit.length;
    const kind = hit.me ? 'mention me' : 'mention';
    out.push(
      text.slice(last, start),
      h('mark', { class: kind, attrs: { 'data-testid': 'mention' } }, text.slice(start, end)),
    );
    last = end;
  }
  out.push(text.slice(last));
  return out;
}

/** A token as the server reads it: itself, then without trailing `.`/`-`, one at a time. */
function resolve(
  token: string,
  names: Map<string, string>,
  m: MessageDto,
): { length: number; me: boolean } | null {
  for (let name = token; name; name = /[.-]$/.test(name) ? name.slice(0, -1) : '') {
    if (name === 'here' || name === 'room') {
      const said = name === 'here' ? m.mentionsHere : m.mentionsRoom;
      return said ? { length: name.length, me: !mine(m) } : null;
    }
    const userId = names.get(name);
    if (userId) return { length: name.length, me: userId === me().id };
  }
  return null;
}
