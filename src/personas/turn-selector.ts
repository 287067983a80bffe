import type { MessageDto } from '../messages/dto/message.dto';
import type { ChatMessage } from './prompt';

/**
 * The pure part of turn-taking (docs/personas.md, "Turn-taking"): the seeded random choices of
 * the `auto` policy, the round-robin order, and the `director`'s prompt and answer. No I/O, so
 * the same inputs always give the same speakers (test/persona-turns.e2e-spec.ts relies on it).
 */

/** What the selectors need of a persona in the room (in the room's stable order). */
export interface TurnCandidate {
  id: string;
  handle: string;
  talkativeness: number;
}

/** A 32-bit mix of the room's seed and a message id (ids go up to 2^53). */
export function turnSeed(seed: number, messageId: number): number {
  const lo = messageId >>> 0;
  const hi = Math.floor(messageId / 0x100000000) >>> 0;
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const word of [lo, hi]) {
    h = Math.imul(h ^ word, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** mulberry32: a small, fast PRNG with a 32-bit state; numbers in [0, 1). */
export function prng(state: number): () => number {
  let a = state >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The `auto` policy's speakers for message `messageId`, in the room's order: each candidate
 * draws a number and speaks when it is below its talkativeness (1 always, 0 never); more than
 * `max` speakers are cut to `max` by a seeded shuffle; when nobody speaks and `fallback` is set
 * (a person's message), one candidate is drawn at random. The same seed and id give the same
 * answer on every instance.
 */
export function autoSpeakers<T extends TurnCandidate>(
  candidates: T[],
  seed: number,
  messageId: number,
  max: number,
  fallback: boolean,
): T[] {
  if (!candidates.length) return [];
  const random = prng(turnSeed(seed, messageId));
  const rolled = candidates.filter((c) => random() < c.talkativeness);
  if (!rolled.length) return fallback ? [candidates[Math.floor(random() * candidates.length)]] : [];
  // A partial Fisher-Yates shuffle picks `max` of them; the result keeps the room's order.
  const picked = new Set<T>();
  const pool = [...rolled];
  while (picked.size < Math.min(max, rolled.length)) {
    const i = Math.floor(random() * pool.length);
    picked.add(pool[i]);
    pool.splice(i, 1);
  }
  return rolled.filter((c) => picked.has(c));
}

/** Round-robin: the `turn`-th speaker (1-based, as a shared counter hands it out). */
export function roundRobinSpeaker<T>(candidates: T[], turn: number): T | undefined {
  if (!candidates.length) return undefined;
  return candidates[(((turn - 1) % candidates.length) + candidates.length) % candidates.length];
}

/** Round-robin after a persona's reply: the next in the room's order after `speakerId`. */
export function nextAfter<T extends { id: string }>(
  candidates: T[],
  speakerId: string,
): T | undefined {
  const others = candidates.filter((c) => c.id !== speakerId);
  if (!others.length) return undefined;
  const at = candidates.findIndex((c) => c.id === speakerId);
  if (at < 0) return others[0];
  for (let i = 1; i <= candidates.length; i++) {
    const c = candidates[(at + i) % candidates.length];
    if (c.id !== speakerId) return c;
  }
  return undefined;
}

/** What the director is told of a persona. */
export interface DirectorPersona {
  handle: string;
  displayName: string;
  description: string;
}

/** Characters of each persona's description, and of each message, the director sees. */
const DIRECTOR_DESCRIPTION_CHARS = 400;
const DIRECTOR_MESSAGE_CHARS = 600;

/**
 * The `director` request: the personas who may speak (handle, name, description) and the
 * latest messages, asking for one handle or `none`.
 */
export function directorMessages(
  personas: DirectorPersona[],
  history: MessageDto[],
  roomName: string,
): ChatMessage[] {
  const list = personas
    .map((p) => {
      const about = p.description.trim().slice(0, DIRECTOR_DESCRIPTION_CHARS);
      return `- @${p.handle} (${p.displayName})${about ? `: ${about}` : ''}`;
    })
    .join('\n');
  const transcript = history
    .filter((m) => !m.deletedAt && m.content && m.role !== 'system')
    .map((m) => {
      const who =
        m.role === 'assistant' ? `@${m.author?.handle ?? 'persona'}` : (m.author?.username ?? '?');
      return `${who}: ${m.content!.slice(0, DIRECTOR_MESSAGE_CHARS)}`;
    })
    .join('\n');
  return [
    {
      role: 'system',
      content:
        `You direct the conversation in the chat room "${roomName}". These AI personas take ` +
        `part in it:\n${list}\n\nGiven the conversation, decide which one of them should ` +
        'speak next, if any. Answer with the handle only (for example @name), or with "none" ' +
        'when no persona should speak.',
    },
    { role: 'user', content: transcript || '(no messages yet)' },
  ];
}

/**
 * The director's answer: accepted only when it is one allowed handle (with or without `@`, any
 * case, surrounding spaces and a final period ignored) or `none`; null for "none", for a handle
 * that is not allowed, and for anything else (free text naming a handle is no answer). A
 * reasoning model's `<think>…</think>` blocks (and an unclosed one) are dropped first.
 */
export function parseDirectorAnswer(answer: string, allowed: string[]): string | null {
  const bare = answer
    .replace(/<think>[\s\S]*?(<\/think>|$)/gi, '')
    .trim()
    .toLowerCase();
  const m = /^@?([a-z0-9_]{2,32})\.?$/.exec(bare);
  if (!m || m[1] === 'none') return null;
  return allowed.includes(m[1]) ? m[1] : null;
}
