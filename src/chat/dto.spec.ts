import fc from 'fast-check';
import { createValidationPipe } from '../common/validation';
import { CLIENT_MSG_ID_PATTERN } from '../messages/dto/message.dto';
import { MessageSendPayload } from './dto';

/** The same DTO without its fast path: class-transformer + class-validator decide. */
class FullValidation extends MessageSendPayload {
  static override fastParse = () => undefined;
}
const pipe = createValidationPipe();
const meta = { type: 'body' as const, metatype: FullValidation };
const slow = (v: unknown) =>
  pipe.transform(v, meta).then(
    (dto) => ({ ok: true as const, dto: { ...(dto as object) } }),
    () => ({ ok: false as const }),
  );

/** In either case: ids are kept in lower case (IsId), whatever case they were sent in. */
const validUuid = fc
  .tuple(fc.uuid(), fc.boolean())
  .map(([u, upper]) => (upper ? u.toUpperCase() : u));
const validClientMsgId = fc.stringMatching(CLIENT_MSG_ID_PATTERN);
const space = fc.constantFrom('', ' ', '\n\t', '\u00a0', '\u2028', '\ufeff');
const words = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 50 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom('', '\ud800', 'a\udfffb', '\ud83d\ude00', 'x'.repeat(100_001)),
);
/** Text with (often) whitespace around it, lone surrogates and the length cap included. */
const text = fc.tuple(space, words, space).map(([a, w, b]) => a + w + b);

const valid = fc.record(
  {
    roomId: validUuid,
    clientMsgId: validClientMsgId,
    content: text.filter((t) => !!t.trim() && t.length < 100_000 && !/\p{Cs}/u.test(t)),
    replyToId: fc.nat(),
  },
  { requiredKeys: ['roomId', 'clientMsgId', 'content'] },
);

/** Any value the wire could carry where a field is expected (near-misses weighted up). */
const odd = fc.oneof(
  { arbitrary: text, weight: 3 },
  {
    arbitrary: fc.constantFrom(
      '00000000-0000-0000-0000-000000000000',
      'ABCDEF00-0000-4000-8000-000000000000',
      '12345678-1234-0234-8234-123456789abc', // version 0: not a UUID to class-validator
      '12345678-1234-4234-c234-123456789abc', // variant c: neither
      'a'.repeat(64),
      'a'.repeat(65),
      Number.MAX_SAFE_INTEGER,
      Number.MAX_SAFE_INTEGER + 1,
      -1,
      -0,
      1.5,
      null,
      '12',
      true,
    ),
    weight: 3,
  },
  { arbitrary: fc.oneof(fc.string(), fc.integer(), fc.double()), weight: 1 },
  { arbitrary: fc.array(fc.string(), { maxLength: 2 }), weight: 1 },
);

/** Valid payloads, and every way of breaking one: a field replaced or removed, a key added. */
const payload = fc
  .tuple(
    valid,
    fc.constantFrom('roomId', 'clientMsgId', 'content', 'replyToId', 'role', '__proto__'),
    fc.constantFrom('keep', 'replace', 'remove'),
    odd,
  )
  .map(([v, key, how, value]) => {
    const out: Record<string, unknown> = { ...v };
    if (how === 'replace') Object.defineProperty(out, key, { value, enumerable: true });
    if (how === 'remove') delete out[key];
    return out;
  });

describe('MessageSendPayload.fastParse (the socket hot path)', () => {
  it('accepts only what the class-validator pipe accepts, with the same result', async () => {
    let fastAccepted = 0;
    await fc.assert(
      fc.asyncProperty(payload, async (v) => {
        const fast = MessageSendPayload.fastParse(v);
        if (fast === undefined) return;
        fastAccepted++;
        expect(await slow(v)).toEqual({ ok: true, dto: fast });
      }),
      { numRuns: 3000 },
    );
    expect(fastAccepted).toBeGreaterThan(0);
  });

  it('takes the fast path for every well-formed send', () => {
    fc.assert(
      fc.property(
        validUuid,
        validClientMsgId,
        valid.map((v) => v.content),
        fc.option(fc.nat(), { nil: undefined }),
        (roomId, clientMsgId, content, replyToId) => {
          const v = {
            roomId,
            clientMsgId,
            content,
            ...(replyToId === undefined ? {} : { replyToId }),
          };
          expect(MessageSendPayload.fastParse(v)).toEqual({
            ...v,
            roomId: roomId.toLowerCase(),
            content: content.trim(),
          });
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('leaves hostile shapes to the full pipe', () => {
    const ok = { roomId: '6f1c2a53-7d0e-4a4b-9c55-0d1b5e2f3a4c', clientMsgId: 'a', content: 'x' };
    expect(MessageSendPayload.fastParse(ok)).toEqual(ok);
    for (const v of [
      JSON.parse(`{"__proto__":{"x":1},"roomId":"${ok.roomId}","clientMsgId":"a","content":"x"}`),
      Object.assign(Object.create({ inherited: 1 }) as object, ok),
      [ok],
      'x',
      null,
      { ...ok, extra: 1 },
      { ...ok, content: '\ud800' },
    ])
      expect(MessageSendPayload.fastParse(v)).toBeUndefined();
  });
});
