import fc from 'fast-check';
import * as parser from 'socket.io-parser';
import { jsonParser, type CarriesBinary, type JsonOnly } from './json-parser';

const original = new parser.Encoder();
const json = new jsonParser.Encoder();
const { EVENT, ACK, CONNECT, CONNECT_ERROR, DISCONNECT } = parser.PacketType;

/** What a client's decoder makes of encoded packets. */
function decode(encoded: unknown[]): unknown[] {
  const decoder = new parser.Decoder();
  const out: unknown[] = [];
  decoder.on('decoded', (p: unknown) => out.push(p));
  for (const e of encoded) decoder.add(e);
  return out;
}

describe('jsonParser (socket.io-parser without the walk for binary)', () => {
  it("encodes events and acks of JSON payloads exactly as socket.io-parser's Encoder", () => {
    const payload = fc.oneof(
      fc.jsonValue(),
      fc.record({
        id: fc.integer(),
        content: fc.string({ unit: 'binary' }),
        createdAt: fc.date({ noInvalidDate: true }),
        editedAt: fc.constantFrom(null),
        reactions: fc.array(fc.record({ emoji: fc.string(), count: fc.nat() })),
      }),
    );
    fc.assert(
      fc.property(
        fc.constantFrom(EVENT, ACK),
        fc.constantFrom('/', '/admin'),
        fc.option(fc.nat(), { nil: undefined }),
        fc.array(payload, { maxLength: 3 }),
        (type, nsp, id, args) => {
          const packet = {
            type,
            nsp,
            id,
            data: type === EVENT ? ['message.created', ...args] : args,
          };
          const encoded = json.encode(packet);
          expect(encoded).toEqual(original.encode(packet));
          expect(decode(encoded)).toEqual(decode(original.encode(packet)));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('leaves other packet types to socket.io-parser', () => {
    for (const packet of [
      { type: CONNECT, nsp: '/', data: { sid: 'abc' } },
      { type: CONNECT_ERROR, nsp: '/', data: { message: 'Unauthorized' } },
      { type: DISCONNECT, nsp: '/admin' },
    ])
      expect(json.encode(packet)).toEqual(original.encode(packet));
  });

  it('sends a Buffer emitted by mistake as JSON, where socket.io-parser splits it out', () => {
    const packet = { type: EVENT, nsp: '/', data: ['x', { file: Buffer.from([1, 2]) }] };
    expect(original.encode(packet)).toHaveLength(2); // the packet and one binary attachment
    expect(decode(json.encode(packet))).toEqual([
      { type: EVENT, nsp: '/', data: ['x', { file: { type: 'Buffer', data: [1, 2] } }] },
    ]);
  });

  // Checked by `npm run typecheck` (tsc): Jest compiles with swc, which does not type-check.
  it('refuses, at compile time, a contract type that carries binary data', () => {
    type Caught = [
      // @ts-expect-error a Buffer deep inside an array inside an object
      JsonOnly<CarriesBinary<{ a: { b: Buffer[] } }>>,
      // @ts-expect-error one member of a union with an ArrayBuffer
      JsonOnly<CarriesBinary<{ a: string } | { b?: ArrayBuffer | null }>>,
      // @ts-expect-error a Uint8Array
      JsonOnly<CarriesBinary<{ bytes: Uint8Array }>>,
      JsonOnly<CarriesBinary<{ at: Date; n: number | null; tags: string[]; x?: unknown }>>,
    ];
    const checked: Caught['length'] = 4;
    expect(checked).toBe(4);
  });
});
