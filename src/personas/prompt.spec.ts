import type { MessageDto } from '../messages/dto/message.dto';
import {
  buildChatMessages,
  recentWindow,
  SUMMARISE_INSTRUCTIONS,
  summariseMessages,
  SUMMARY_HEADING,
  systemPrompt,
  transcriptLine,
} from './prompt';

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
    mentions: [],
    threadRootId: null,
    attachments: [],
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

  it('tells what the window left out: the oldest message shown, and whether older text exists', () => {
    const [a, b, gone, c] = [
      msg({ author: alice, content: 'a'.repeat(50) }),
      msg({ author: alice, content: 'b'.repeat(50) }),
      msg({ author: alice, content: 'x', deletedAt: new Date() }),
      msg({ author: alice, content: 'c'.repeat(50) }),
    ];
    const all = recentWindow(persona, [a, b, gone, c], 10_000);
    expect(all).toMatchObject({ oldestId: a.id, leftOut: false });
    expect(all.messages).toHaveLength(3);
    const cut = recentWindow(persona, [a, b, gone, c], 130);
    expect(cut).toMatchObject({ oldestId: b.id, leftOut: true });
    // Only a tombstone older than the window: nothing with text was left out.
    const onlyTombstone = recentWindow(persona, [gone, c], 60);
    expect(onlyTombstone).toMatchObject({ oldestId: c.id, leftOut: false });
    expect(recentWindow(persona, [gone], 60)).toMatchObject({ oldestId: null, leftOut: false });
  });

  it('puts the summary right after the system prompt, ahead of the recent messages', () => {
    const history = [msg({ author: alice, content: 'latest' })];
    const out = buildChatMessages(persona, room, history, 1000, 'alice likes Mars.');
    expect(out.map((m) => m.role)).toEqual(['system', 'system', 'user']);
    expect(out[1].content).toBe(`${SUMMARY_HEADING}\nalice likes Mars.`);
    expect(out[2].content).toBe('alice: latest');
    expect(buildChatMessages(persona, room, history, 1000, null)).toHaveLength(2);
  });

  it('a summarise request carries the previous summary and the new lines, bounded in size', () => {
    const lines = [
      transcriptLine(msg({ author: alice, content: 'hi' }), persona),
      transcriptLine(
        msg({
          role: 'assistant',
          author: { id: 'p1', kind: 'persona', handle: 'sage' },
          content: 'Hello.',
        }),
        persona,
      ),
      transcriptLine(msg({ role: 'system', content: 'bob joined' }), persona),
    ];
    expect(lines).toEqual(['alice: hi', 'sage: Hello.', '(notice) bob joined']);
    expect(
      transcriptLine(msg({ author: alice, content: 'x', deletedAt: new Date() }), persona),
    ).toBe(null);
    const [sys, user] = summariseMessages(persona, room, 'Before.', lines as string[], 500);
    expect(sys.content.startsWith(`${SUMMARISE_INSTRUCTIONS} Sage (@sage)`)).toBe(true);
    expect(sys.content).toContain('at most 500 characters');
    expect(user.content).toBe(
      'Summary so far:\nBefore.\n\nNew messages, oldest first:\nalice: hi\nsage: Hello.\n(notice) bob joined',
    );
    expect(summariseMessages(persona, room, null, ['a'], 500)[1].content).toContain('(none yet)');
  });
});
