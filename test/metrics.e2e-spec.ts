import { randomUUID } from 'node:crypto';
import { startApp, TestApp } from './support/app';
import { ADMIN_ENV, join, loginAdmin, newRoom, newUser } from './support/factories';
import { connect, ok } from './support/socket';

describe('metrics (e2e)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ADMIN_ENV, METRICS_TOKEN: 'metrics-token-0123456789' });
  });
  afterAll(() => t.close());

  it('exposes the listed series behind the bearer token', async () => {
    await t.http().get('/metrics').expect(401);
    const admin = await loginAdmin(t);
    const u = await newUser(t);
    const room = await newRoom(t, admin);
    await join(t, u, room.id);
    const s = await connect(t, u.accessToken);
    await ok(s, 'message.send', { roomId: room.id, clientMsgId: randomUUID(), content: 'counted' });
    const res = await t
      .http()
      .get('/metrics')
      .set('Authorization', 'Bearer metrics-token-0123456789')
      .expect(200);
    const text = res.text;
    for (const series of [
      'parlor_sockets_connected 1',
      'parlor_messages_persisted_total{role="user"} 1',
      'parlor_ws_acks_total{command="message.send",result="ok"} 1',
      'parlor_ws_emits_total{event="message.created"}',
      'parlor_send_ack_seconds_bucket',
      'parlor_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/api/v1/rooms/:id/join",status="200"}',
      'parlor_nodejs_eventloop_lag_seconds',
      'parlor_db_pool_connections{state="total"}',
      'parlor_persona_generations_total',
      'parlor_persona_generation_seconds',
    ]) {
      expect(text).toContain(series);
    }
    s.close();
  });
});

describe('metrics disabled (e2e)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ METRICS_ENABLED: 'false' });
  });
  afterAll(() => t.close());

  it('answers 404', async () => {
    await t.http().get('/metrics').expect(404);
  });
});
