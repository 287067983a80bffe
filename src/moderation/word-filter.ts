import { AppError, ErrorCode } from '../common/errors';

/**
 * The word-filter matcher: pure functions, no I/O (unit-tested in word-filter.spec.ts).
 *
 * A rule's pattern is a word or a phrase, never a regular expression:
 * - matched case-insensitively (Unicode simple case folding), after NFC normalisation of both
 *   the pattern and the text;
 * - as whole words: a match is neither preceded nor followed by a letter, mark or digit of any
 *   script ("ass" does not match "class"; "café" matches in "un café noir");
 * - spaces in a phrase match any run of whitespace;
 * - `*` stands for any letters, marks or digits (zero or more) inside one word: `spam*`,
 *   `*spam`, `*spam*`, `f*ck`. At most one `*` per word apart from a trailing one, so every
 *   rule runs in time linear in the text (no catastrophic backtracking, whatever the input).
 *
 * All rules of a room (its own and the global ones) compile into one expression per action,
 * once per change; a message is scanned once per action, and not at all when there are none.
 */

export type FilterAction = 'block' | 'mask';
export const FILTER_ACTIONS: readonly FilterAction[] = ['block', 'mask'];

export interface FilterRule {
  id: string;
  pattern: string;
  action: FilterAction;
  /** null: a global rule. */
  roomId: string | null;
}

export interface CompiledFilter {
  /** Whether any rule exists (nothing to scan otherwise). */
  readonly empty: boolean;
  readonly block: RegExp | null;
  /** Rules of `block`, in the order of its capture groups. */
  readonly blockRules: readonly FilterRule[];
  readonly mask: RegExp | null;
}

export type ScreenResult = { blocked: FilterRule } | { content: string };

export const PATTERN_MAX_LENGTH = 100;

/** Letters, marks and digits of every script: what a "word" is made of. */
const WORD = String.raw`[\p{L}\p{M}\p{N}]`;
const WORD_CHAR = /[\p{L}\p{M}\p{N}]/u;

/** The canonical form stored and compared: NFC, trimmed, single spaces, lower case, `*` once. */
export function normalizePattern(raw: string): string {
  return raw.normalize('NFC').trim().replace(/\s+/gu, ' ').replace(/\*+/g, '*').toLowerCase();
}

/** Why a (normalised) pattern is refused, or null when it is a valid rule. */
export function patternProblem(pattern: string): string | null {
  if (!pattern) return 'pattern must not be empty';
  if ([...pattern].length > PATTERN_MAX_LENGTH)
    return `pattern must be at most ${PATTERN_MAX_LENGTH} characters`;
  if (/\p{C}/u.test(pattern)) return 'pattern must not contain control or invisible characters';
  for (const word of pattern.split(' ')) {
    if (!WORD_CHAR.test(word)) return `"${word}" has no letter or digit`;
    const inner = word.endsWith('*') ? word.slice(0, -1) : word;
    if ((inner.match(/\*/g) ?? []).length > 1)
      return `"${word}": at most one * per word besides a trailing one`;
  }
  return null;
}

function escape(text: string): string {
  return text.replace(/[\\^$.|?+()[\]{}/]/g, (c) => `\\${c}`);
}

/** One rule as a regular-expression source (no capture groups of its own). */
function ruleSource(pattern: string): string {
  const body = pattern
    .split(' ')
    .map((word) => word.split('*').map(escape).join(`${WORD}*`))
    .join(String.raw`\s+`);
  // Whole words: a boundary is needed only where the rule itself begins or ends with a word
  // character (or a `*`, which stands for them).
  const starts = pattern.startsWith('*') || WORD_CHAR.test([...pattern][0]);
  const last = [...pattern].pop()!;
  const ends = last === '*' || WORD_CHAR.test(last);
  return `${starts ? `(?<!${WORD})` : ''}${body}${ends ? `(?!${WORD})` : ''}`;
}

/** Compiles a room's rules (its own and the global ones) once per change. */
export function compileFilter(rules: readonly FilterRule[]): CompiledFilter {
  const blockRules = rules.filter((r) => r.action === 'block');
  const maskRules = rules.filter((r) => r.action === 'mask');
  return {
    empty: rules.length === 0,
    block: blockRules.length
      ? new RegExp(blockRules.map((r) => `(${ruleSource(r.pattern)})`).join('|'), 'iu')
      : null,
    blockRules,
    mask: maskRules.length
      ? new RegExp(maskRules.map((r) => `(?:${ruleSource(r.pattern)})`).join('|'), 'giu')
      : null,
  };
}

export const NO_FILTER: CompiledFilter = compileFilter([]);

/**
 * Applies a compiled filter to a text: the first blocking rule that matches, or the text to
 * store, with every masked match's characters (whitespace aside) replaced by `*`. The text is
 * returned as given when nothing matched; NFC-normalised when something was masked.
 */
export function screen(filter: CompiledFilter, text: string): ScreenResult {
  if (filter.empty) return { content: text };
  const normalized = text.normalize('NFC');
  if (filter.block) {
    // Invisible characters inside a word ("ba\u200bd") must not hide it from a rule.
    const m = filter.block.exec(visible(normalized));
    if (m) {
      const group = m.findIndex((g, i) => i > 0 && g !== undefined);
      return { blocked: filter.blockRules[group - 1] };
    }
  }
  if (filter.mask) {
    let content = maskAll(filter.mask, normalized);
    // A word hidden by invisible characters is masked with them dropped; text without such a
    // word keeps them (emoji sequences are joined by one).
    const shown = visible(content);
    if (shown !== content && shown.search(filter.mask) >= 0) content = maskAll(filter.mask, shown);
    if (content !== normalized) return { content };
  }
  return { content: text };
}

/** Format characters (zero-width spaces and joiners, soft hyphens, bidi marks): not shown. */
const INVISIBLE = /\p{Cf}/gu;

function visible(text: string): string {
  return text.replace(INVISIBLE, '');
}

function maskAll(mask: RegExp, text: string): string {
  return text.replace(mask, (hit) => hit.replace(/\S/gu, '*'));
}

/**
 * The text to store for a message (masked where a `mask` rule matched), or CONTENT_BLOCKED
 * naming the `block` rule that matched.
 */
export function screenContent(filter: CompiledFilter, text: string): string {
  if (filter.empty) return text;
  const result = screen(filter, text);
  if ('content' in result) return result.content;
  const { id, pattern, roomId } = result.blocked;
  return blocked(id, pattern, roomId);
}

function blocked(filterId: string, pattern: string, roomId: string | null): never {
  throw new AppError(
    ErrorCode.CONTENT_BLOCKED,
    `Blocked by the ${roomId ? "room's" : 'global'} word filter ("${pattern}")`,
    { filterId, pattern, scope: roomId ? 'room' : 'global' },
  );
}
