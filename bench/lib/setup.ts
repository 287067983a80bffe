/**
 * Shared set-up of the socket scenarios: a built server, a throwaway database, Parlor started
 * on it, users and rooms seeded through the real API, and the load workers.
 */
import { randomBytes } from 'node:crypto';
import { createRooms, joinRooms, loginAdmin, type SeedUser, signupUsers } from './api';
import type { Options } from './options';
import { onCleanup } from './run';
import {
  buildServer,
  createDatabase,
  type Database,
  type ParlorOptions,
  type ServerBuild,
  type ServerProc,
  startParlor,
} from './servers';
import { log } from './util';

export interface Prepared {
  build: ServerBuild;
  db: Database;
  jwtSecret: string;
  /** `--server-env KEY=VALUE,KEY=VALUE`: extra configuration for every Parlor server. */
  serverEnv: Record<string, string>;
}

export async function prepare(o: Options): Promise<Prepared> {
  log(`building the server (${o.server})`);
  const build = buildServer(o.server);
  const db = await createDatabase(o.dbUrl);
  onCleanup('drop database', () => db.drop());
  log(`  throwaway database ${db.name} (dropped at the end)`);
  const flag = o.raw['server-env'];
  const serverEnv = Object.fromEntries(
    (typeof flag === 'string' ? flag.split(',') : []).map((kv) => {
      const eq = kv.indexOf('=');
      if (eq < 1) throw new Error(`--server-env: expected KEY=VALUE, got ${kv}`);
      return [kv.slice(0, eq), kv.slice(eq + 1)];
    }),
  );
  if (Object.keys(serverEnv).length) log(`  server env: ${JSON.stringify(serverEnv)}`);
  return { build, db, jwtSecret: randomBytes(32).toString('hex'), serverEnv };
}

export async function parlor(
  p: Prepared,
  label: string,
  extra: Partial<ParlorOptions> = {},
): Promise<ServerProc> {
  const s = await startParlor(label, p.build.main, {
    databaseUrl: p.db.url,
    jwtSecret: p.jwtSecret,
    bcryptCost: 4,
    ...extra,
    extraEnv: { ...p.serverEnv, ...extra.extraEnv },
  });
  onCleanup(`stop ${label}`, () => s.stop());
  log(`  ${label} (pid ${s.pid}) at ${s.url}`);
  return s;
}

/** PostgreSQL backends serving the throwaway database (Parlor's pool), for CPU sampling. */
export async function pgBackends(db: Database): Promise<number[]> {
  const rows = await db.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`,
  );
  return rows.map((r) => r.pid);
}

export interface Seeded {
  users: SeedUser[];
  /** roomOf[i]: the small room of user i (undefined past rooms × members). */
  smallRoomOf: (string | undefined)[];
  bigRoom?: string;
}

/**
 * `rooms` rooms of `members` users each, and one room of the first `big` users (0: none). All
 * through the API: signup, admin creates public rooms, every user joins with their own token.
 */
export async function seedRooms(
  base: string,
  rooms: number,
  members: number,
  big: number,
): Promise<Seeded> {
  const t0 = Date.now();
  const admin = await loginAdmin(base);
  const users = await signupUsers(base, Math.max(rooms * members, big));
  const tag = randomBytes(3).toString('hex');
  const small = await createRooms(
    base,
    admin,
    Array.from({ length: rooms }, (_, i) => `bench-${tag}-${i}`),
  );
  const bigRoom = big > 0 ? (await createRooms(base, admin, [`bench-${tag}-big`]))[0] : undefined;
  const smallRoomOf = users.map((_, i) => small[Math.floor(i / members)]);
  const pairs = users.flatMap((user, i) => [
    ...(smallRoomOf[i] ? [{ user, roomId: smallRoomOf[i] }] : []),
    ...(bigRoom && i < big ? [{ user, roomId: bigRoom }] : []),
  ]);
  await joinRooms(base, pairs);
  log(
    `  seeded ${users.length} users, ${rooms + (bigRoom ? 1 : 0)} rooms in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
  return { users, smallRoomOf, bigRoom };
}
