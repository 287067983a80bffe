import { createRequire } from 'node:module';
import { AppError, ErrorCode } from '../common/errors';

/**
 * The word-filter matcher: pure functions, no I/O (unit-tested in word-filter.spec.ts).
 *
 * A rule's pattern is a word or a phrase, never a regular expression:
 * - matched case-insensitively on a folded form of both the pattern and the text, so that
 *   lookalike letters do not get past a rule: compatibility forms are unfolded (fullwidth
 *   `ｂａｄ`, mathematical `𝐛𝐚𝐝`), accents dropped (`bàd`), and non-ASCII letters that look like
 *   others replaced by them (Cyrillic `bаd`, Greek `Βad`), from Unicode's confusables table
 *   (UTS #39, through the `unhomoglyph` package). ASCII itself is only lower-cased: `0` is not
 *   `o` and `rn` is not `m`, so plain English text is matched as written;
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
    if (!WORD_CHAR.test(word) || !WORD_CHAR.test(foldWord(word.replace(/\*/g, ''))))
      return `"${word}" has no letter or digit`;
    const inner = word.endsWith('*') ? word.slice(0, -1) : word;
    if ((inner.match(/\*/g) ?? []).length > 1)
      return `"${word}": at most one * per word besides a trailing one`;
  }
  return null;
}

/**
 * Unicode's confusables (UTS #39), as the `unhomoglyph` package ships them: a character → the
 * base characters it looks like. Read as data (an O(1) lookup per character), resolved from this
 * file in the built (CommonJS) app and from the working directory under Jest's ES modules, which
 * have no `__filename`.
 */
const CONFUSABLES = createRequire(
  typeof __filename === 'string' ? __filename : `${process.cwd()}/package.json`,
)('unhomoglyph/data.json') as Record<string, string>;

/**
 * Dropped: combining diacritics (accents) and variation selectors. The marks that make up other
 * scripts' letters stay.
 */
const DROPPED_RANGES: readonly [number, number][] = [
  [0x0300, 0x036f],
  [0x1ab0, 0x1aff],
  [0x1dc0, 0x1dff],
  [0x20d0, 0x20ff],
  [0xfe00, 0xfe0f],
  [0xfe20, 0xfe2f],
  [0xe0100, 0xe01ef],
];
const isDropped = (c: string): boolean => {
  const cp = c.codePointAt(0)!;
  return DROPPED_RANGES.some(([lo, hi]) => cp >= lo && cp <= hi);
};
const isAscii = (c: string): boolean => c.length === 1 && c.charCodeAt(0) < 0x80;

/** A character's base form: its confusable's, or itself; dropped marks removed. */
function base(c: string): string {
  let out = '';
  for (const d of CONFUSABLES[c] ?? c) if (!isDropped(d)) out += d;
  return out;
}

/**
 * One decomposed character's folded form, the same for its upper- and lower-case forms (a rule
 * is stored lower-cased, the text is not): the lower-case form's lookalike when that is plain
 * ASCII, else the upper-case form's when that is, else the lower-case form's.
 */
function foldLetter(d: string): string {
  const upper = d.toUpperCase();
  // Through the upper case, so that letters with two lower cases (final `ς`, `σ`) fold alike.
  const lower = [...upper].length === 1 ? upper.toLowerCase() : d.toLowerCase();
  if (isAscii(lower)) return lower;
  // A letter or digit never folds into punctuation or a symbol (`ð` looks like `∂`): that would
  // break a word in two.
  const keepsWord = (f: string) => !WORD_CHAR.test(d) || (f !== '' && [...f].every(isWordChar));
  const fromLower = base(lower).toLowerCase();
  if (keepsWord(fromLower) && [...fromLower].every(isAscii)) return fromLower;
  const fromUpper = base(upper).toLowerCase();
  if (keepsWord(fromUpper) && [...fromUpper].every(isAscii)) return fromUpper;
  return keepsWord(fromLower) ? fromLower : lower;
}

const isWordChar = (c: string): boolean => WORD_CHAR.test(c);

/** Folded non-ASCII characters, remembered: a filtered room's sends fold every character. */
const foldCache = new Map<string, string>();

/** One code point's folded form (see the header): lower-cased ASCII, or its base lookalike. */
function foldChar(c: string): string {
  if (isAscii(c)) return c.toLowerCase();
  let folded = foldCache.get(c);
  if (folded !== undefined) return folded;
  folded = '';
  if (!INVISIBLE_CHAR.test(c)) {
    for (const d of c.normalize('NFKD')) if (!isDropped(d)) folded += foldLetter(d);
    // A letter or digit stays one: what its compatibility form adds between letters (the space
    // of `ͺ`, the fraction slash of `½`) is not kept.
    if (WORD_CHAR.test(c) && ![...folded].every(isWordChar)) {
      folded = [...folded].filter(isWordChar).join('') || c.toLowerCase();
    }
  }
  if (foldCache.size < 100_000) foldCache.set(c, folded);
  return folded;
}

/**
 * A text's folded form, with where each of its code units came from in the text: `from[i]` and
 * `to[i]` bound the text's code units that folded unit i stands for.
 */
function fold(text: string): { folded: string; from: number[]; to: number[] } {
  let folded = '';
  const from: number[] = [];
  const to: number[] = [];
  let at = 0;
  for (const c of text) {
    const f = foldChar(c);
    folded += f;
    for (let i = 0; i < f.length; i++) {
      from.push(at);
      to.push(at + c.length);
    }
    at += c.length;
  }
  return { folded, from, to };
}

function foldWord(text: string): string {
  return [...text].map(foldChar).join('');
}

function escape(text: string): string {
  return text.replace(/[\\^$.|?*+()[\]{}/]/g, (c) => `\\${c}`);
}

/** One rule as a regular-expression source (no capture groups of its own), on folded text. */
function ruleSource(pattern: string): string {
  // The pattern's own spaces and `*` keep their meaning; what its parts fold to is literal.
  const body = pattern
    .split(' ')
    .map((word) =>
      word
        .split('*')
        .map((part) => escape(foldWord(part)))
        .join(`${WORD}*`),
    )
    .join(String.raw`\s+`);
  // Whole words: a boundary is needed only where the rule itself begins or ends with a word
  // character (or a `*`, which stands for them).
  const folded = foldWord(pattern);
  const starts = pattern.startsWith('*') || WORD_CHAR.test([...folded][0] ?? '');
  const ends = pattern.endsWith('*') || WORD_CHAR.test([...folded].pop() ?? '');
  return `${starts ? `(?<!${WORD})` : ''}${body}${ends ? `(?!${WORD})` : ''}`;
}

/** Compiles a room's rules (its own and the global ones) once per change. */
export function compileFilter(all: readonly FilterRule[]): CompiledFilter {
  // A rule stored before the folding rules changed may no longer be valid (one that folds to
  // nothing would match everywhere): it is left out, never compiled.
  const rules = all.filter((r) => patternProblem(r.pattern) === null);
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
 * store, with every masked match's characters (whitespace aside) replaced by `*` and the
 * invisible ones among them dropped. Matching runs on the folded text (see the header); the
 * text is returned as given when nothing matched, NFC-normalised when something was masked.
 */
export function screen(filter: CompiledFilter, text: string): ScreenResult {
  if (filter.empty) return { content: text };
  const normalized = text.normalize('NFC');
  const { folded, from, to } = fold(normalized);
  if (filter.block) {
    const m = filter.block.exec(folded);
    if (m) {
      const group = m.findIndex((g, i) => i > 0 && g !== undefined);
      return { blocked: filter.blockRules[group - 1] };
    }
  }
  if (filter.mask) {
    let content = '';
    let done = 0;
    filter.mask.lastIndex = 0;
    for (const m of folded.matchAll(filter.mask)) {
      if (!m[0].length) continue;
      // Two matches inside one character's fold (`½` is `1/2`) must not go back.
      const start = Math.max(from[m.index], done);
      let end = to[m.index + m[0].length - 1];
      // What follows and folds to nothing (an accent left loose) goes with the word.
      for (const c of normalized.slice(end)) {
        if (foldChar(c) !== '') break;
        end += c.length;
      }
      if (end <= start) continue;
      content += normalized.slice(done, start);
      content += maskWord(normalized.slice(start, end));
      done = end;
    }
    if (done > 0) return { content: content + normalized.slice(done) };
  }
  return { content: text };
}

/** A matched stretch as stored: whitespace kept, what folds to nothing dropped, the rest `*`. */
function maskWord(text: string): string {
  let out = '';
  for (const c of text) out += /\s/u.test(c) ? c : foldChar(c) === '' ? '' : '*';
  return out;
}

/** Format characters (zero-width spaces, joiners, soft hyphens, bidi marks): not shown. */
const INVISIBLE_CHAR = /^\p{Cf}$/u;

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
