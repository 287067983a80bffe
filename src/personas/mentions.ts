/**
 * `@handle` tokens: not preceded by a word character, `@` or `.` (so e-mail addresses and
 * `@@x` do not count) and not followed by a word character (so `@sage_bot` is not `@sage`).
 */
const MENTION = /(?<![\w@.])@([A-Za-z0-9_]{2,32})(?!\w)/g;

/** Handles mentioned in a message, lower-cased, in order of first mention, without duplicates. */
export function mentionedHandles(text: string): string[] {
  const seen = new Set<string>();
  for (const m of text.matchAll(MENTION)) seen.add(m[1].toLowerCase());
  return [...seen];
}
