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
 * front; room notices are `system`. Tombstones are left out.
 */
export function buildChatMessages(
  persona: PromptPersona,
  room: PromptRoom,
  history: MessageDto[],
  budgetChars: number,
): ChatMessage[] {
  const picked: ChatMessage[] = [];
  let used = 0;
  for (let i = history.length - 1; i >= 0; i--) {
    const m = toChatMessage(history[i], persona.id);
    if (!m) continue;
    if (picked.length && used + m.content.length > budgetChars) break;
    picked.push(m);
    used += m.content.length;
  }
  return [{ role: 'system', content: systemPrompt(persona, room) }, ...picked.reverse()];
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
