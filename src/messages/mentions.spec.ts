import { mentionTokens, resolveMentions } from './mentions';

const members = new Map(
  ['bob', 'Alice', 'bob.smith', 'x-ray', 'zoe_2'].map((u) => [u.toLowerCase(), u]),
);
const parse = (text: string) => resolveMentions(mentionTokens(text), (name) => members.get(name));

describe('mention parsing', () => {
  it('finds @username next to punctuation', () => {
    for (const text of [
      '@bob',
      'hi @bob',
      'hi @bob, there',
      '(@bob)',
      '@bob!',
      '@bob?',
      '@bob.',
      '@bob...',
      '"@bob"',
      '@bob:',
      '@bob;',
      'ping @bob\nnext line',
      '¡@bob!',
      '@bob-',
    ]) {
      expect([text, parse(text).users]).toEqual([text, ['bob']]);
    }
  });

  it('is case-insensitive and keeps each user once, in order of first mention', () => {
    expect(parse('@ALICE @Bob @alice @bob').users).toEqual(['Alice', 'bob']);
  });

  it('takes dots, hyphens and underscores inside names', () => {
    expect(parse('@bob.smith and @x-ray and @zoe_2').users).toEqual([
      'bob.smith',
      'x-ray',
      'zoe_2',
    ]);
    expect(parse('@bob.smith.').users).toEqual(['bob.smith']);
  });

  it('leaves unknown names, e-mail addresses, paths and longer words plain', () => {
    for (const text of [
      '@carol',
      'mail a@bob.com',
      'bob@bob',
      'x@bob',
      'https://example.social/@bob',
      '@@bob',
      '@bobby',
      '@bob_',
      '@bobé',
      '@bob.smithy',
      '_@bob',
      '.@bob',
      '@',
      '@ bob',
      'é@bob',
    ]) {
      expect([text, parse(text).users]).toEqual([text, []]);
    }
  });

  it('knows @here and @room, in any case and next to punctuation', () => {
    expect(parse('@here')).toMatchObject({ here: true, room: false });
    expect(parse('(@ROOM).')).toMatchObject({ here: false, room: true });
    expect(parse('@Here, @bob')).toEqual({ users: ['bob'], here: true, room: false });
    expect(parse('@heres @roomy a@here')).toEqual({ users: [], here: false, room: false });
  });

  it('costs nothing without an @', () => {
    expect(mentionTokens('no mentions here')).toEqual([]);
  });
});
