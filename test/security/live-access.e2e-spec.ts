import { startApp, type TestApp } from '../support/app';
import {
  ADMIN_ENV,
  loginAdmin,
  newRoom,
  newUser,
  send,
  type TestRoom,
  type TestUser,
} from '../support/factories';
import { call, type ClientSocket, connect, ok, record, sleep } from '../support/socket';

/**
 * Authorization is decided from current state, never from what a socket learnt at its
 * handshake (issue 12, hole 1): a demoted admin loses admin powers on sockets opened before the
 * demotion, at once and on every command, including after `auth.refresh` with a new token.
 */
describe('live sockets follow role changes', () => {
  let t: TestApp;
  let root: TestUser;
  let member: TestUser;
  let staff: TestUser;
  let room: TestRoom;
  let socket: ClientSocket;

  beforeAll(async () => {
    t = await startApp(ADMIN_ENV);
    root = await loginAdmin(t);
    member = await newUser(t);
    staff = await newUser(t);
    room = await newRoom(t, root, { visibility: 'private' });
    await t
      .http()
      .post(`/api/v1/rooms/${room.id}/members`)
      .set(root.auth)
      .send({ userId: member.id })
      .expect(201);
    await t
      .http()
      .patch(`/api/v1/users/${staff.id}`)
      .set(root.auth)
      .send({ role: 'admin' })
      .expect(200);
    // A fresh token for the promoted user: their socket starts out an admin's.
    const login = await t
      .http()
      .post('/api/v1/auth/login')
      .send({ username: staff.username, password: staff.password })
      .expect(200);
    socket = await connect(t, (login.body as { accessToken: string }).accessToken);
  });

  afterAll(async () => {
    socket?.close();
    await t.close();
  });

  it('a demoted admin stops receiving, reading, joining and deleting in private rooms', async () => {
    // As an admin: may open the private room (without being a member) and hears it live.
    await ok(socket, 'room.join', { roomId: room.id });
    const heard = record(socket, 'message.created');
    const before = await send(t, member, room.id, 'while staff is admin');
    await waitFor(() => heard.of('message.created').some((m) => m.id === before.id));

    await t
      .http()
      .patch(`/api/v1/users/${staff.id}`)
      .set(root.auth)
      .send({ role: 'user' })
      .expect(200);
    await sleep(300); // the re-evaluation runs on the event, after the PATCH answered

    const after = await send(t, member, room.id, 'after the demotion');
    await sleep(300);
    expect(heard.of('message.created').map((m) => m.id)).not.toContain(after.id);

    for (const res of [
      await call(socket, 'history.fetch', { roomId: room.id }),
      await call(socket, 'room.join', { roomId: room.id }),
      await call(socket, 'message.delete', { messageId: before.id }),
    ]) {
      expect(res).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    }
    // The message is intact.
    const page = await t
      .http()
      .get(`/api/v1/rooms/${room.id}/messages`)
      .set(member.auth)
      .expect(200);
    expect(page.body.items.find((m: { id: number }) => m.id === before.id).content).toBe(
      'while staff is admin',
    );

    // A refreshed token changes nothing: the role is read at each decision.
    const login = await t
      .http()
      .post('/api/v1/auth/login')
      .send({ username: staff.username, password: staff.password })
      .expect(200);
    await ok(socket, 'auth.refresh', { accessToken: login.body.accessToken });
    expect(await call(socket, 'history.fetch', { roomId: room.id })).toMatchObject({
      ok: false,
      error: { code: 'NOT_FOUND' },
    });
  });

  it('a socket that joined a room cannot keep it when the join check raced a demotion', async () => {
    // Promote again, then demote while room.join commands are in flight: whichever order they
    // land in, the socket must end up not subscribed.
    await t
      .http()
      .patch(`/api/v1/users/${staff.id}`)
      .set(root.auth)
      .send({ role: 'admin' })
      .expect(200);
    const joins = Array.from({ length: 5 }, () => call(socket, 'room.join', { roomId: room.id }));
    await t
      .http()
      .patch(`/api/v1/users/${staff.id}`)
      .set(root.auth)
      .send({ role: 'user' })
      .expect(200);
    await Promise.all(joins);
    await sleep(300);
    const heard = record(socket, 'message.created');
    const m = await send(t, member, room.id, 'after the race');
    await sleep(300);
    expect(heard.of('message.created').map((x) => x.id)).not.toContain(m.id);
  });
});

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await sleep(20);
  }
}
