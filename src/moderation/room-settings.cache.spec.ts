import type { ConfigService } from '@nestjs/config';
import type { Env } from '../config/env';
import { RedisChannels } from '../redis/redis-channels';
import type { RoomDto } from '../rooms/dto/room.dto';
import type { RoomStore } from '../rooms/room.store';
import { RoomSettingsCache } from './room-settings.cache';
import type { FilterRule } from './word-filter';
import type { WordFilterStore } from './word-filter.store';

/** The database as the cache sees it, with reads that finish when the test says so. */
class FakeDb {
  slowModeMs = 0;
  rules: FilterRule[] = [];
  reads = 0;
  private gates: (() => void)[] = [];
  hold = false;

  private async gate(): Promise<void> {
    this.reads++;
    if (this.hold) await new Promise<void>((resolve) => this.gates.push(resolve));
  }
  release(): void {
    for (const open of this.gates.splice(0)) open();
  }
  roomStore = {
    slowModeMs: async () => {
      const value = this.slowModeMs; // read before the gate: what the database held then
      await this.gate();
      return value;
    },
  } as unknown as RoomStore;
  filterStore = {
    rulesFor: async () => {
      const value = [...this.rules];
      await this.gate();
      return value;
    },
  } as unknown as WordFilterStore;
}

const config = (ttl = 30_000) =>
  ({
    get: (key: keyof Env) =>
      ({ ROOM_SETTINGS_TTL_MS: ttl, ROOM_SETTINGS_CACHE_ROOMS: 2, REDIS_URL: undefined })[
        key as string
      ],
  }) as unknown as ConfigService<Env, true>;

/** One instance: no Redis. */
const single = new RedisChannels(null, config());

const ROOM = '00000000-0000-4000-8000-000000000001';
const updated = (id: string) => ({ room: { id } as RoomDto });

describe('RoomSettingsCache', () => {
  it('reads a room once, then answers from memory synchronously', async () => {
    const db = new FakeDb();
    db.slowModeMs = 5000;
    const cache = new RoomSettingsCache(db.roomStore, db.filterStore, single, config());
    const first = cache.get(ROOM);
    expect(first).toBeInstanceOf(Promise);
    expect((await first).slowModeMs).toBe(5000);
    const second = cache.get(ROOM);
    expect(second).not.toBeInstanceOf(Promise);
    expect(db.reads).toBe(2); // one read of each store, once
  });

  it('drops a room on its change event, and a load racing the change is not kept', async () => {
    const db = new FakeDb();
    const cache = new RoomSettingsCache(db.roomStore, db.filterStore, single, config());
    await cache.get(ROOM);
    db.hold = true;
    db.slowModeMs = 1000;
    cache.onRoomUpdated(updated(ROOM));
    const racing = cache.get(ROOM); // reads 1000…
    db.slowModeMs = 2000; // …then a second change commits and is announced before it ends
    cache.onRoomUpdated(updated(ROOM));
    db.release();
    expect((await racing).slowModeMs).toBe(1000);
    db.hold = false;
    // Not kept: the next send reads again and sees the newer value.
    expect((await cache.get(ROOM)).slowModeMs).toBe(2000);
  });

  it('global rule changes drop every room; the TTL is a safety net', async () => {
    const db = new FakeDb();
    const cache = new RoomSettingsCache(db.roomStore, db.filterStore, single, config(50));
    await cache.get(ROOM);
    db.rules = [{ id: 'g', pattern: 'x', action: 'block', roomId: null }];
    cache.onFiltersChanged({ roomId: null });
    expect((await cache.get(ROOM)).filter.empty).toBe(false);
    db.rules = [];
    expect(cache.get(ROOM)).not.toBeInstanceOf(Promise);
    await new Promise((r) => setTimeout(r, 60));
    expect((await cache.get(ROOM)).filter.empty).toBe(true);
  });

  it('keeps at most ROOM_SETTINGS_CACHE_ROOMS rooms', async () => {
    const db = new FakeDb();
    const cache = new RoomSettingsCache(db.roomStore, db.filterStore, single, config());
    const ids = ['a', 'b', 'c'].map((c) => ROOM.slice(0, -1) + c);
    for (const id of ids) await cache.get(id);
    expect(cache.get(ids[0])).toBeInstanceOf(Promise); // the oldest went first
    expect(cache.get(ids[2])).not.toBeInstanceOf(Promise);
  });
});
