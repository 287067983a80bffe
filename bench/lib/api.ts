/** The real REST API, for seeding (users, rooms, memberships) and the history/login loops. */
import { randomBytes } from 'node:crypto';
import { ADMIN } from './servers';
import { pool, Progress } from './util';

export interface ApiResult<T> {
  status: number;
  body: T;
}

export async function api<T>(
  base: string,
  method: string,
  path: string,
  body?: object,
  token?: string,
): Promise<ApiResult<T>> {
  const res = await fetch(base + path, {
    method,
    headers: {
      ...(body ? { 'content-type': 'application/json' } : {}),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(60_000),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

async function expectOk<T>(what: string, p: Promise<ApiResult<T>>): Promise<T> {
  const res = await p;
  if (res.status >= 300) throw new Error(`${what}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

export interface SeedUser {
  id: string;
  username: string;
  password: string;
  token: string;
}

interface TokensBody {
  accessToken: string;
  user: { id: string };
}

export async function loginAdmin(base: string): Promise<string> {
  const body = await expectOk(
    'admin login',
    api<TokensBody>(base, 'POST', '/api/v1/auth/login', {
      username: ADMIN.username,
      password: ADMIN.password,
    }),
  );
  return body.accessToken;
}

/** Signs up `count` users through POST /auth/signup (bcrypt at the server's cost). */
export async function signupUsers(
  base: string,
  count: number,
  concurrency = 16,
  password = 'bench-password-1',
): Promise<SeedUser[]> {
  const tag = randomBytes(3).toString('hex');
  const bar = new Progress('signup users', count);
  const users = await pool(
    Array.from({ length: count }, (_, i) => i),
    concurrency,
    async (i) => {
      const username = `b${tag}_${i}`;
      const body = await expectOk(
        `signup ${username}`,
        api<TokensBody>(base, 'POST', '/api/v1/auth/signup', {
          username,
          email: `${username}@bench.example.com`,
          password,
        }),
      );
      return { id: body.user.id, username, password, token: body.accessToken };
    },
    (done) => bar.update(done),
  );
  bar.finish();
  return users;
}

export async function createRooms(
  base: string,
  adminToken: string,
  names: string[],
): Promise<string[]> {
  const bar = new Progress('create rooms', names.length);
  const ids = await pool(
    names,
    8,
    async (name) =>
      (
        await expectOk(
          `create room ${name}`,
          api<{ id: string }>(
            base,
            'POST',
            '/api/v1/rooms',
            { name, visibility: 'public' },
            adminToken,
          ),
        )
      ).id,
    (done) => bar.update(done),
  );
  bar.finish();
  return ids;
}

/** Each [user, roomId] pair: POST /rooms/:id/join with the user's own token. */
export async function joinRooms(
  base: string,
  pairs: { user: SeedUser; roomId: string }[],
  concurrency = 16,
): Promise<void> {
  const bar = new Progress('join rooms', pairs.length);
  await pool(
    pairs,
    concurrency,
    ({ user, roomId }) =>
      expectOk(
        `join ${roomId}`,
        api(base, 'POST', `/api/v1/rooms/${roomId}/join`, undefined, user.token),
      ),
    (done) => bar.update(done),
  );
  bar.finish();
}
