import { randomBytes } from 'node:crypto';
import type { MessageDto } from '../../src/messages/dto/message.dto';
import type { TestApp } from './app';

export interface TestUser {
  id: string;
  username: string;
  password: string;
  accessToken: string;
  refreshToken: string;
  auth: { Authorization: string };
}

let counter = 0;
export function uniqueName(prefix = 'user'): string {
  return `${prefix}${++counter}_${randomBytes(3).toString('hex')}`;
}

/** Signs up a fresh user through the real API. */
export async function newUser(
  t: TestApp,
  overrides: { username?: string; password?: string } = {},
): Promise<TestUser> {
  const username = overrides.username ?? uniqueName();
  const password = overrides.password ?? 'password-' + randomBytes(4).toString('hex');
  const res = await t
    .http()
    .post('/api/v1/auth/signup')
    .send({ username, email: `${username}@example.com`, password })
    .expect(201);
  const body = res.body as { accessToken: string; refreshToken: string; user: { id: string } };
  return {
    id: body.user.id,
    username,
    password,
    accessToken: body.accessToken,
    refreshToken: body.refreshToken,
    auth: { Authorization: `Bearer ${body.accessToken}` },
  };
}

/** An admin, created the way operators do it: from ADMIN_* settings at boot (see startApp env). */
export const ADMIN = { username: 'root', email: 'root@example.com', password: 'admin-password-1' };
export const ADMIN_ENV = {
  ADMIN_USERNAME: ADMIN.username,
  ADMIN_EMAIL: ADMIN.email,
  ADMIN_PASSWORD: ADMIN.password,
};

/**
 * For suites whose few users write far faster than a person (hundreds of sends, edits and
 * conversations a second on server PostgreSQL): the per-user write limits out of the way.
 * Suites about the limits set their own.
 */
export const NO_WRITE_LIMITS = {
  RATE_LIMIT_SEND: '1000000',
  RATE_LIMIT_EDIT: '1000000',
  RATE_LIMIT_REACT: '1000000',
  RATE_LIMIT_ROOMS: '1000000',
  RATE_LIMIT_ADMIN: '1000000',
};

export async function loginAdmin(t: TestApp): Promise<TestUser> {
  const res = await t
    .http()
    .post('/api/v1/auth/login')
    .send({ username: ADMIN.username, password: ADMIN.password })
    .expect(200);
  const body = res.body as { accessToken: string; refreshToken: string; user: { id: string } };
  return {
    id: body.user.id,
    username: ADMIN.username,
    password: ADMIN.password,
    accessToken: body.accessToken,
    refreshToken: body.refreshToken,
    auth: { Authorization: `Bearer ${body.accessToken}` },
  };
}

export interface TestRoom {
  id: string;
  name: string;
}

/** A group room created by an admin through the API. */
export async function newRoom(
  t: TestApp,
  admin: TestUser,
  opts: {
    visibility?: 'public' | 'private';
    name?: string;
    theme?: string;
    description?: string;
  } = {},
): Promise<TestRoom> {
  const res = await t
    .http()
    .post('/api/v1/rooms')
    .set(admin.auth)
    .send({
      name: opts.name ?? uniqueName('room'),
      visibility: opts.visibility ?? 'public',
      theme: opts.theme,
      description: opts.description,
    })
    .expect(201);
  return res.body as TestRoom;
}

export async function join(t: TestApp, user: TestUser, roomId: string): Promise<void> {
  await t.http().post(`/api/v1/rooms/${roomId}/join`).set(user.auth).expect(200);
}

export interface SentMessage {
  id: number;
  version: number;
  content?: string;
  clientMsgId: string | null;
}

export async function send(
  t: TestApp,
  user: TestUser,
  roomId: string,
  content: string,
  clientMsgId = randomBytes(8).toString('hex'),
): Promise<SentMessage> {
  const res = await t
    .http()
    .post(`/api/v1/rooms/${roomId}/messages`)
    .set(user.auth)
    .send({ clientMsgId, content })
    .expect(201);
  return res.body as SentMessage;
}

/** Sends a message (a reply with `replyToId`) and answers it as stored, mentions and all. */
export async function post(
  t: TestApp,
  user: TestUser,
  roomId: string,
  content: string,
  replyToId?: number,
): Promise<MessageDto> {
  const res = await t
    .http()
    .post(`/api/v1/rooms/${roomId}/messages`)
    .set(user.auth)
    .send({ clientMsgId: randomBytes(8).toString('hex'), content, replyToId });
  if (res.status !== 201) throw new Error(`send: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as MessageDto;
}
