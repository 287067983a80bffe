/**
 * Mentions in a message's text, parsed on the server at send and edit (never taken from the
 * client). Pure functions: resolving a name to a member is the caller's (RoomMembersCache).
 *
 * A mention is `@` followed by username characters (`A–Z a–z 0–9 _ . -`, as at signup), not
 * preceded by a letter, digit, `_`, `.`, `-`, `/` or `@` (so `a@b.com`, `x/@bob` and `@@bob`
 * are not mentions) and not followed by another letter or digit (`@bobé` is not `@bob`).
 * Trailing `.` and `-` are tried off one by one, so `@bob.` and `@bob--` name `bob` while
 * `@bob.smith` names `bob.smith`. Names are case-insensitive.
 */
const TOKEN = /(?<![\p{L}\p{N}_.@/-])@([A-Za-z0-9_.-]{1,64})(?![\p{L}\p{N}])/gu;

/** `@here` (members online now) and `@room` (every member): keywords before usernames. */
export const MENTION_GROUPS = ['here', 'room'] as const;
export type MentionGroup = (typeof MENTION_GROUPS)[number];

/** The lower-cased `@tokens` of a text, unique, in order of first appearance. */
export function mentionTokens(text: string): string[] {
  if (!text.includes('@')) return [];
  const seen = new Set<string>();
  for (const m of text.matchAll(TOKEN)) seen.add(m[1].toLowerCase());
  return [...seen];
}

/** A token, then the token without its trailing `.` and `-`, one character at a time. */
function candidates(token: string): string[] {
  const out = [token];
  for (let t = token; /[.-]$/.test(t);) {
    t = t.slice(0, -1);
    if (t) out.push(t);
  }
  return out;
}

export interface ParsedMentions<T> {
  /** Resolved names, in order of first mention, each once. */
  users: T[];
  here: boolean;
  room: boolean;
}

/**
 * Resolves tokens (mentionTokens) with `lookup` (a lower-cased name → a member, or undefined:
 * unknown names stay plain text). `@here`/`@room` are keywords, whoever is called so.
 */
export function resolveMentions<T>(
  tokens: string[],
  lookup: (lowerName: string) => T | undefined,
): ParsedMentions<T> {
  const found = new Set<T>();
  let here = false;
  let room = false;
  for (const token of tokens) {
    for (const name of candidates(token)) {
      if (name === 'here') here = true;
      else if (name === 'room') room = true;
      else {
        const user = lookup(name);
        if (user === undefined) continue;
        found.add(user);
      }
      break;
    }
  }
  return { users: [...found], here, room };
}
