import type { ConfigService } from '@nestjs/config';
import type { Env } from '../config/env';
import { RedisChannels } from '../redis/redis-channels';
import { RoomMembersCache } from './room-members.cache';
import type { RoomStore } from './room.store';

type Row = { userId: string; username: string; notifiedOfAll: boolean };

/** A store whose reads wait until the test lets them answer (or answer at once). */
function fakeStore() {
  const members: Row[] = [{ userId: 'u1', username: 'Bob', notifiedOfAll: false }];
  const pending: (() => void)[] = [];
  let hold = false;
  let reads = 0;
  const store = {
    memberNames: () => {
      reads++;
      const snapshot = [...members];
      return hold
        ? new Promise<Row[]>((resolve) => pending.push(() => resolve(snapshot)))
        : Promise.resolve(snapshot);
    },
  } as unknown as RoomStore;
  return {
    store,
    members,
    hold: (on: boolean) => (hold = on),
    release: () => pending.splice(0).forEach((f) => f()),
    reads: () => reads,
  };
}

function cache(store: RoomStore, ttlMs = 60_000, rooms = 100) {
  const settings: Partial<Env> = {
    ROOM_MEMBERS_CACHE_TTL_MS: ttlMs,
    ROOM_MEMBERS_CACHE_ROOMS: rooms,
  };
  const config = { get: (k: keyof Env) => settings[k] } as unknown as ConfigService<Env, true>;
  return new RoomMembersCache(store, new RedisChannels(null, config), config);
}

const joined = (roomId: string) => ({
  roomId,
  user: { id: 'u2', username: 'Dave', displayName: null },
});

describe('RoomMembersCache', () => {
  it('reads a room once, then answers from memory, by lower-cased name', async () => {
    const f = fakeStore();
    const c = cache(f.store);
    const first = await c.get('r');
    expect(first.byName.get('bob')).toEqual({ userId: 'u1', username: 'Bob' });
    const again = c.get('r');
    expect(again).not.toBeInstanceOf(Promise);
    expect(f.reads()).toBe(1);
  });

  it('a membership event drops the room: the next get reads again', async () => {
    const f = fakeStore();
    const c = cache(f.store);
    await c.get('r');
    f.members.push({ userId: 'u2', username: 'Dave', notifiedOfAll: false });
    c.onJoined(joined('r'));
    expect((await c.get('r')).byName.has('dave')).toBe(true);
    f.members.pop();
    c.onLeft({ roomId: 'r', userId: 'u2', reason: 'left' });
    expect((await c.get('r')).byName.has('dave')).toBe(false);
    expect(f.reads()).toBe(3);
  });

  it('a load that raced an invalidation answers its callers but is not kept', async () => {
    const f = fakeStore();
    const c = cache(f.store);
    f.hold(true);
    const racing = c.get('r'); // reads the members before dave joined
    f.members.push({ userId: 'u2', username: 'Dave', notifiedOfAll: false });
    c.onJoined(joined('r')); // committed while the read was under way
    f.release();
    expect((await racing).byName.has('dave')).toBe(false);
    f.hold(false);
    expect((await c.get('r')).byName.has('dave')).toBe(true);
  });

  it('a notification-level change drops the room: whether someone hears every message follows', async () => {
    const f = fakeStore();
    const c = cache(f.store);
    expect((await c.get('r')).someNotifiedOfAll).toBe(false);
    f.members[0].notifiedOfAll = true;
    expect((await c.get('r')).someNotifiedOfAll).toBe(false); // held
    c.changed('r');
    expect((await c.get('r')).someNotifiedOfAll).toBe(true);
    expect(f.reads()).toBe(2);
  });

  it('reads again after the TTL, and holds at most the configured number of rooms', async () => {
    const f = fakeStore();
    const c = cache(f.store, 100_000, 2);
    await c.get('a');
    await c.get('b');
    await c.get('c'); // 'a' goes
    expect(c.get('c')).not.toBeInstanceOf(Promise);
    expect(c.get('a')).toBeInstanceOf(Promise);
    const short = cache(f.store, 1);
    await short.get('r');
    await new Promise((r) => setTimeout(r, 5));
    expect(short.get('r')).toBeInstanceOf(Promise);
  });
});
