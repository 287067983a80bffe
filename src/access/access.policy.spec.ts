import type { Room } from '../rooms/room.entity';
import type { AccessFacts, RoomStore } from '../rooms/room.store';
import { AccessPolicy } from './access.policy';

/** The policy over facts the test sets (the store's one statement replaced). */
function policy(facts: Partial<AccessFacts>): AccessPolicy {
  const all: AccessFacts = {
    role: 'user',
    room: { id: 'r', kind: 'group', visibility: 'private' } as Room,
    membership: { role: 'member' },
    archivedAt: null,
    mute: null,
    ban: null,
    ...facts,
  };
  return new AccessPolicy({ accessFacts: () => Promise.resolve(all) } as unknown as RoomStore);
}

describe('AccessPolicy.may (a yes or no, where room() would refuse)', () => {
  const user = { id: 'u' };

  it('says yes to a member writing', async () => {
    await expect(policy({}).may(user, 'r', 'write')).resolves.toBe(true);
  });

  it('says no where room() refuses with FORBIDDEN (muted, archived)', async () => {
    const mute = { reason: 'spam', until: null };
    await expect(policy({ mute }).may(user, 'r', 'write')).resolves.toBe(false);
    await expect(policy({ archivedAt: new Date() }).may(user, 'r', 'write')).resolves.toBe(false);
    await expect(policy({}).may(user, 'r', 'moderate')).resolves.toBe(false);
  });

  it('says no, not 404, for a private room left or a room gone', async () => {
    await expect(policy({ membership: null }).may(user, 'r', 'write')).resolves.toBe(false);
    await expect(policy({ room: null }).may(user, 'r', 'read')).resolves.toBe(false);
    await expect(policy({ membership: null }).room(user, 'r', 'write')).rejects.toMatchObject({
      code: 'NOT_FOUND',
    });
  });

  it('lets other failures through (the database, not a refusal)', async () => {
    const failing = new AccessPolicy({
      accessFacts: () => Promise.reject(new Error('connection terminated')),
    } as unknown as RoomStore);
    await expect(failing.may(user, 'r', 'write')).rejects.toThrow('connection terminated');
  });
});
