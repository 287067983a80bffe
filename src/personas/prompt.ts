import type { MessageDto } from '../messages/dto/message.dto';
import type { RoomKind } from '../rooms/room.entity';

/** One chat-completions message (a subset of the SDK's type that every compatible server takes). */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface PromptPersona {
  id: string;
  handle: string;
  displayName: string;
  systemPrompt: string;
  style: string;
}

export interface PromptRoom {
  name: string;
  kind: RoomKind;
  theme: string;
  description: string;
}

/** The persona's instructions, its style, and where it is speaking. */
export function systemPrompt(persona: PromptPersona, room: PromptRoom): string {
  const where =
    room.kind === 'conversation'
      ? `You are ${persona.displayName} (@${persona.handle}) in a private conversation titled "${room.name}".`
      : `You are ${persona.displayName} (@${persona.handle}) in the chat room "${room.name}", where several people talk; answer the person who called you.`;
  return [
    persona.systemPrompt.trim(),
    persona.style.trim() && `Style: ${persona.style.trim()}`,
    where,
    room.theme.trim() && `Room theme: ${room.theme.trim()}`,
    room.description.trim() && `Room description: ${room.description.trim()}`,
    'Messages from others are prefixed with their name ("alice: hello"). Write only your reply, without a name prefix.',
  ]
    .filter(Boolean)
    .join('\n\n');
}

/**
 * The request's messages: the system prompt, then the newest history that fits `budgetChars`
 * (the newest message, the one being answered, always does), oldest first. Roles: this
 * persona's replies are `assistant`; people, and other personas, are `user` with their name in
 * front; room notices are `system`. Tombstones are left out. With a `summary` (the persona's
 * memory of the older history, see persona-memory.ts), it comes right after the system prompt.
 */
export function buildChatMessages(
  persona: PromptPersona,
  room: PromptRoom,
  history: MessageDto[],
  budgetChars: number,
  summary?: string | null,
): ChatMessage[] {
  const recent = recentWindow(persona, history, budgetChars);
  return withSummary(persona, room, recent.messages, summary);
}

/** The system prompt, the summary when there is one, then `recent`. */
export function withSummary(
  persona: PromptPersona,
  room: PromptRoom,
  recent: ChatMessage[],
  summary?: string | null,
): ChatMessage[] {
  return [
    { role: 'system', content: systemPrompt(persona, room) },
    ...(summary ? [{ role: 'system' as const, content: `${SUMMARY_HEADING}\n${summary}` }] : []),
    ...recent,
  ];
}

/** What precedes the summary in a reply's request. */
export const SUMMARY_HEADING =
  'Summary of the earlier conversation (older messages that are no longer shown):';

/** The part of the history a reply's request shows. */
export interface RecentWindow {
  /** Oldest first. */
  messages: ChatMessage[];
  /** Id of the oldest message shown; null when none is. */
  oldestId: number | null;
  /** Whether `history` holds a message with text older than the window (it overflowed). */
  leftOut: boolean;
}

/** The newest messages of `history` (oldest first) that fit `budgetChars`; see buildChatMessages. */
export function recentWindow(
  persona: Pick<PromptPersona, 'id'>,
  history: MessageDto[],
  budgetChars: number,
): RecentWindow {
  const picked: ChatMessage[] = [];
  let used = 0;
  let oldestId: number | null = null;
  let i = history.length - 1;
  for (; i >= 0; i--) {
    const m = toChatMessage(history[i], persona.id);
    if (!m) continue;
    if (picked.length && used + m.content.length > budgetChars) break;
    picked.push(m);
    used += m.content.length;
    oldestId = history[i].id;
  }
  const leftOut = history.slice(0, Math.max(i + 1, 0)).some((m) => toChatMessage(m, persona.id));
  return { messages: picked.reverse(), oldestId, leftOut };
}

/** Opens the instructions of a summarise request (tests recognise the request by it). */
export const SUMMARISE_INSTRUCTIONS = 'You keep the running memory of';

/**
 * A summarise request: the previous summary (if any) and the newly overflowed messages, as a
 * transcript, to be folded into one new summary of at most `maxChars` characters.
 */
export function summariseMessages(
  persona: PromptPersona,
  room: PromptRoom,
  previous: string | null,
  lines: string[],
  maxChars: number,
): ChatMessage[] {
  const where =
    room.kind === 'conversation'
      ? `the private conversation "${room.name}"`
      : `the chat room "${room.name}"`;
  return [
    {
      role: 'system',
      content: [
        `${SUMMARISE_INSTRUCTIONS} ${persona.displayName} (@${persona.handle}) in ${where}.`,
        'Rewrite the summary so that it also covers the new messages: keep who said what, facts, names, decisions, open questions and what was promised; drop small talk.',
        `Write at most ${maxChars} characters of plain text, in the language of the conversation, and nothing else.`,
      ].join(' '),
    },
    {
      role: 'user',
      content: `Summary so far:\n${previous ?? '(none yet)'}\n\nNew messages, oldest first:\n${lines.join('\n')}`,
    },
  ];
}

/** One message as a line of a summarise request's transcript; null for tombstones. */
export function transcriptLine(m: MessageDto, persona: Pick<PromptPersona, 'id' | 'handle'>) {
  const c = toChatMessage(m, persona.id);
  if (!c) return null;
  if (c.role === 'system') return `(notice) ${c.content}`;
  if (c.role === 'assistant') return `${persona.handle}: ${c.content}`;
  return c.content;
}

function toChatMessage(m: MessageDto, personaId: string): ChatMessage | null {
  if (m.deletedAt || !m.content) return null;
  switch (m.role) {
    case 'system':
      return { role: 'system', content: m.content };
    case 'assistant':
      return m.author?.id === personaId
        ? { role: 'assistant', content: m.content }
        : { role: 'user', content: `${m.author?.handle ?? 'another persona'}: ${m.content}` };
    case 'user':
      return { role: 'user', content: `${m.author?.username ?? 'someone'}: ${m.content}` };
  }
}
