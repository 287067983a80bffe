import { mentionedHandles } from './mentions';

describe('mentionedHandles', () => {
  it.each([
    ['hi @sage', ['sage']],
    ['@Sage, what about @bard? and @sage again', ['sage', 'bard']],
    ['@sage.', ['sage']],
    ['(@sage)', ['sage']],
    ['mail me at bob@sage.com', []],
    ['@@sage', []],
    ['@s', []],
    ['@sage_bot is not @sage', ['sage_bot', 'sage']],
    [`@${'a'.repeat(33)}`, []],
    ['@émile', []],
    ['no mention here', []],
  ])('%j → %j', (text, expected) => {
    expect(mentionedHandles(text)).toEqual(expected);
  });
});
