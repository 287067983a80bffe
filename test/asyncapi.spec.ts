import { Parser } from '@asyncapi/parser';
import { COMMAND_NAMES, SERVER_EVENT_NAMES } from '../src/chat/contract';
import { startApp, type TestApp } from './support/app';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a JSON document read by path
type Json = Record<string, any>;

describe('AsyncAPI document of the socket contract', () => {
  let t: TestApp;
  let doc: Json;
  const schemaOf = (payload: Json): Json =>
    payload.$ref
      ? doc.components.schemas[payload.$ref.replace('#/components/schemas/', '')]
      : payload;

  beforeAll(async () => {
    t = await startApp();
    // Public: no Authorization header.
    const res = await t.http().get('/docs/asyncapi.json').expect(200);
    doc = res.body;
  });
  afterAll(() => t.close());

  it('is a valid AsyncAPI 3.0 document (parsed and validated by @asyncapi/parser)', async () => {
    expect(doc.asyncapi).toBe('3.0.0');
    const { document, diagnostics } = await new Parser().parse(JSON.stringify(doc));
    const problems = diagnostics.filter((d) => Number(d.severity) <= 1); // errors and warnings
    expect(problems.map((d) => `${d.code}: ${d.message} at ${d.path.join('.')}`)).toEqual([]);
    expect(document).toBeDefined();
    expect(doc.servers.parlor).toMatchObject({ protocol: 'ws', pathname: '/socket.io' });
    expect(doc.servers.parlor.host).toMatch(/^127\.0\.0\.1:\d+$/); // the host that was asked
  });

  it('has every command of the contract, with a payload schema and an acknowledgement, and nothing else', () => {
    for (const name of COMMAND_NAMES) {
      const op = doc.operations[name];
      expect(op).toMatchObject({ action: 'receive' });
      const message = doc.components.messages[name];
      const payload = schemaOf(message.payload);
      expect(payload).toMatchObject({ type: 'object' });
      expect(Object.keys(payload.properties).length).toBeGreaterThan(0);
      const ack = doc.components.messages[`${name}.ack`].payload;
      expect(ack.oneOf[0].properties.data).toBeDefined();
      expect(ack.oneOf[1].properties.error).toEqual({ $ref: '#/components/schemas/AckError' });
      expect(op.reply.messages).toEqual([{ $ref: `#/channels/chat/messages/${name}.ack` }]);
    }
    const receives = Object.keys(doc.operations).filter(
      (k) => doc.operations[k].action === 'receive',
    );
    expect(receives.sort()).toEqual([...COMMAND_NAMES].sort());
  });

  it('has every server event of the contract with a payload schema, and nothing else', () => {
    for (const name of SERVER_EVENT_NAMES) {
      expect(doc.operations[name]).toMatchObject({ action: 'send' });
      const payload = schemaOf(doc.components.messages[name].payload);
      expect(payload.type).toBe('object');
      expect(Object.keys(payload.properties).length).toBeGreaterThan(0);
    }
    const sends = Object.keys(doc.operations).filter((k) => doc.operations[k].action === 'send');
    expect(sends.sort()).toEqual([...SERVER_EVENT_NAMES].sort());
  });

  it('derives payload schemas from the validation rules: message.send requires roomId, clientMsgId, content', () => {
    const send = schemaOf(doc.components.messages['message.send'].payload);
    expect([...send.required].sort()).toEqual(['clientMsgId', 'content', 'roomId']);
    expect(send.properties.roomId).toMatchObject({ type: 'string', format: 'uuid' });
    expect(send.properties.replyToId).toMatchObject({ type: 'integer', minimum: 0 });
    expect(send.additionalProperties).toBe(false); // unknown fields are rejected
    const join = schemaOf(doc.components.messages['room.join'].payload);
    expect(join.required).toEqual(['roomId']);
    expect(join.properties.since).toMatchObject({ type: 'integer', minimum: 0 });
    // Acks and events reuse the REST schemas, with nullable fields as JSON Schema.
    const sendAck = doc.components.messages['message.send.ack'].payload.oneOf[0];
    expect(sendAck.properties.data).toEqual({ $ref: '#/components/schemas/MessageDto' });
    expect(doc.components.schemas.MessageDto.properties.editedAt.type).toEqual(['string', 'null']);
  });

  it('room.updated is the room without the per-viewer joined/myRole (room.join keeps them)', () => {
    const updated = schemaOf(doc.components.messages['room.updated'].payload);
    const room = doc.components.schemas.RoomDto;
    expect(Object.keys(room.properties)).toEqual(expect.arrayContaining(['joined', 'myRole']));
    expect(Object.keys(updated.properties).sort()).toEqual(
      Object.keys(room.properties)
        .filter((k) => k !== 'joined' && k !== 'myRole')
        .sort(),
    );
  });

  it('serves a readable HTML page naming every command and event, with no script', async () => {
    const res = await t.http().get('/docs/asyncapi').expect(200);
    expect(res.headers['content-type']).toMatch(/text\/html/);
    for (const name of COMMAND_NAMES) expect(res.text).toContain(`id="cmd-${name}"`);
    for (const name of SERVER_EVENT_NAMES) expect(res.text).toContain(`id="evt-${name}"`);
    expect(res.text).not.toMatch(/<script/i);
    expect(res.text).toContain('href="#schema-MessageDto"');
  });

  it('is linked from the Swagger description', async () => {
    const res = await t.http().get('/docs-json').expect(200);
    expect(res.body.info.description).toContain('/docs/asyncapi');
  });
});
