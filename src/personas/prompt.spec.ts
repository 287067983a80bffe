import type { MessageDto } from '../messages/dto/message.dto';
import { buildChatMessages, systemPrompt } from './prompt';

const persona = {
  id: 'p1',
  handle: 'sage',
  displayName: 'Sage',
  systemPrompt: 'You are wise.',
  style: 'Terse.',
};
const room = {
  name: 'astro',
  kind: 'group' as const,
  theme: 'space',
  description: 'Stars and such',
};

let nextId = 1;
function msg(partial: Partial<MessageDto>): MessageDto {
  return {
    id: nextId++,
    version: nextId,
    roomId: 'r',
    author: null,
    role: 'user',
    content: '',
    replyToId: null,
    clientMsgId: null,
    reactions: [],
    createdAt: new Date(),
    editedAt: null,
    deletedAt: null,
    ...partial,
  };
}
const alice = { id: 'u1', kind: 'user' as const, username: 'alice', displayName: null };

describe('persona prompt', () => {
  it('system prompt carries the prompt, the style, the theme and the description', () => {
    const text = systemPrompt(persona, room);
    for (const part of ['You are wise.', 'Style: Terse.', 'space', 'Stars and such', '@sage']) {
      expect(text).toContain(part);
    }
  });

  it('maps roles: people and other personas are user with names, own replies assistant', () => {
    const history = [
      msg({ role: 'system', content: 'alice joined' }),
      msg({ author: alice, content: 'hi @sage' }),
      msg({
        role: 'assistant',
        author: { id: 'p1', kind: 'persona', handle: 'sage' },
        content: 'Hello.',
      }),
      msg({
        role: 'assistant',
        author: { id: 'p2', kind: 'persona', handle: 'bard' },
        content: 'Hey!',
      }),
      msg({ author: alice, content: 'gone', deletedAt: new Date() }),
      msg({ author: alice, content: 'and now?' }),
    ];
    expect(buildChatMessages(persona, room, history, 10_000).slice(1)).toEqual([
      { role: 'system', content: 'alice joined' },
      { role: 'user', content: 'alice: hi @sage' },
      { role: 'assistant', content: 'Hello.' },
      { role: 'user', content: 'bard: Hey!' },
      { role: 'user', content: 'alice: and now?' },
    ]);
  });

  it('keeps the newest messages within the character budget, always the last one', () => {
    const history = ['a'.repeat(50), 'b'.repeat(50), 'c'.repeat(50)].map((content) =>
      msg({ author: alice, content }),
    );
    const fit = buildChatMessages(persona, room, history, 130).slice(1);
    expect(fit.map((m) => m.content[7])).toEqual(['b', 'c']);
    const tiny = buildChatMessages(persona, room, history, 1).slice(1);
    expect(tiny).toHaveLength(1);
    expect(tiny[0].content).toContain('ccc');
  });
});
