import type { MessageDto } from '../messages/dto/message.dto';
import {
  autoSpeakers,
  directorMessages,
  nextAfter,
  parseDirectorAnswer,
  prng,
  roundRobinSpeaker,
  turnSeed,
} from './turn-selector';

const at = (t: number) => [
  { id: 'a', handle: 'a', talkativeness: t },
  { id: 'b', handle: 'b', talkativeness: t },
  { id: 'c', handle: 'c', talkativeness: t },
];
const ids = (xs: { id: string }[]) => xs.map((x) => x.id).join(',');

describe('turn selector', () => {
  it('the PRNG and the seed mix are fixed functions (a change would change every replay)', () => {
    const r = prng(1);
    expect([r(), r(), r()]).toEqual([0.6270739405881613, 0.002735721180215478, 0.5274470399599522]);
    expect([turnSeed(42, 1), turnSeed(42, 2), turnSeed(0, 0)]).toEqual([
      3742787577, 1410877077, 4289745439,
    ]);
    // Ids above 2^32 still mix their high bits.
    expect(turnSeed(42, 2 ** 40 + 7)).not.toEqual(turnSeed(42, 7));
  });

  it('auto: the same seed and message id give the same speakers; seed 42 replays exactly', () => {
    const got = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((id) =>
      ids(autoSpeakers(at(0.5), 42, id, 1, true)),
    );
    expect(got).toEqual(['b', 'c', 'a', 'c', 'a', 'a', 'b', 'b', 'a', 'b']);
    const all = [1, 5, 7].map((id) => ids(autoSpeakers(at(0.5), 42, id, 3, false)));
    // Several winners keep the room's order; nobody wins and no fallback: silence.
    expect(all).toEqual(['b,c', 'a,b,c', '']);
    expect(ids(autoSpeakers(at(0.5), 43, 1, 1, true))).toBe(
      ids(autoSpeakers(at(0.5), 43, 1, 1, true)),
    );
  });

  it('auto: talkativeness 1 always speaks, 0 never (but the fallback draws one)', () => {
    const c = [
      { id: 'a', handle: 'a', talkativeness: 0 },
      { id: 'b', handle: 'b', talkativeness: 1 },
      { id: 'c', handle: 'c', talkativeness: 0 },
    ];
    for (let id = 1; id < 50; id++) expect(ids(autoSpeakers(c, 7, id, 1, true))).toBe('b');
    const quiet = at(0);
    const drawn = new Set<string>();
    for (let id = 1; id < 50; id++) {
      expect(autoSpeakers(quiet, 7, id, 1, false)).toEqual([]);
      drawn.add(ids(autoSpeakers(quiet, 7, id, 1, true)));
    }
    expect([...drawn].sort()).toEqual(['a', 'b', 'c']);
    // At most max speakers, whatever wins.
    expect(autoSpeakers(at(1), 7, 1, 2, true)).toHaveLength(2);
  });

  it('round-robin goes round the room; after a persona, the next one, never itself', () => {
    const c = at(0.5);
    expect([1, 2, 3, 4, 5].map((n) => roundRobinSpeaker(c, n)!.id)).toEqual([
      'a',
      'b',
      'c',
      'a',
      'b',
    ]);
    expect(roundRobinSpeaker([], 1)).toBeUndefined();
    expect(nextAfter(c, 'a')!.id).toBe('b');
    expect(nextAfter(c, 'c')!.id).toBe('a');
    expect(nextAfter(c, 'gone')!.id).toBe('a');
    expect(nextAfter([c[0]], 'a')).toBeUndefined();
  });

  it('director: a lone allowed handle (think blocks dropped), or null for none, free text, junk and strangers', () => {
    const allowed = ['sage', 'none_bot', 'luna'];
    expect(parseDirectorAnswer('@Luna', allowed)).toBe('luna');
    expect(parseDirectorAnswer('I think @sage should answer, then luna.', allowed)).toBeNull();
    expect(parseDirectorAnswer('  @sage.\n', allowed)).toBe('sage');
    expect(parseDirectorAnswer('<think>maybe @luna?</think>\n@sage', allowed)).toBe('sage');
    expect(parseDirectorAnswer('<think>@luna is best', allowed)).toBeNull();
    expect(parseDirectorAnswer('@sage @luna', allowed)).toBeNull();
    expect(parseDirectorAnswer('none', allowed)).toBeNull();
    expect(parseDirectorAnswer('None of them.', allowed)).toBeNull();
    expect(parseDirectorAnswer('@mallory', allowed)).toBeNull();
    expect(parseDirectorAnswer('', allowed)).toBeNull();
    expect(parseDirectorAnswer('none_bot', allowed)).toBe('none_bot');
  });

  it('director: the prompt lists the personas and the conversation, without notices', () => {
    const history = [
      { role: 'user', content: 'who knows stars?', author: { username: 'alice' } },
      { role: 'system', content: 'x was added' },
      { role: 'assistant', content: 'I do.', author: { handle: 'sage' } },
    ] as unknown as MessageDto[];
    const [system, user] = directorMessages(
      [{ handle: 'sage', displayName: 'Sage', description: 'An astronomer.' }],
      history,
      'Lobby',
    );
    expect(system.content).toContain('- @sage (Sage): An astronomer.');
    expect(system.content).toContain('"Lobby"');
    expect(user.content).toBe('alice: who knows stars?\n@sage: I do.');
  });
});
