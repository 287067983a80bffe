import * as parser from 'socket.io-parser';
import type { Ack, Commands, ServerEvents } from './contract';

/**
 * Socket.IO's parser with one change: an event or ack is encoded as JSON without first walking
 * the whole payload for binary data. socket.io-parser's `hasBinary` visits every property of
 * every emitted payload (and serialises each Date once more through its `toJSON`) to decide
 * whether to split buffers out; Parlor's socket contract carries JSON only (checked at compile
 * time below), so the walk finds nothing and cost ~3 % of the server's CPU per message.
 *
 * The wire format is socket.io-parser's own (protocol 5), byte for byte, and decoding is its
 * Decoder unchanged, so clients see no difference. A Buffer emitted by mistake would still
 * arrive, as JSON (`{ type: 'Buffer', data: [...] }`) instead of a binary attachment. Socket.IO
 * constructs the encoder without a JSON replacer, so none is applied here either. (With REDIS_URL
 * the sharded adapter still checks each broadcast for binary once before publishing it.)
 */
class JsonEncoder extends parser.Encoder {
  override encode(packet: parser.Packet): string[] {
    if (packet.type !== parser.PacketType.EVENT && packet.type !== parser.PacketType.ACK)
      return super.encode(packet) as string[];
    // As socket.io-parser's encodeAsString for a packet without attachments.
    let out = String(packet.type);
    if (packet.nsp && packet.nsp !== '/') out += packet.nsp + ',';
    if (packet.id != null) out += packet.id;
    if (packet.data != null) out += JSON.stringify(packet.data);
    return [out];
  }
}

/** The `parser` option of Parlor's Socket.IO server. */
export const jsonParser = { ...parser, Encoder: JsonEncoder };

/** Whether T holds binary data anywhere (a Buffer, a typed array, an ArrayBuffer or a Blob). */
export type CarriesBinary<T> = T extends ArrayBuffer | ArrayBufferView | Blob
  ? true
  : T extends readonly (infer U)[]
    ? CarriesBinary<U>
    : T extends Date | ((...args: never[]) => unknown)
      ? false
      : T extends object
        ? true extends { [K in keyof T]-?: CarriesBinary<T[K]> }[keyof T]
          ? true
          : false
        : false;
export type JsonOnly<T extends false> = T;
/**
 * The contract's types carry no binary: every server event's payload and every command's ack
 * as `Commands` types it. A guard on the contract, not a proof about the values: the gateway's
 * results reach the ack as `unknown`, and `unknown` fields (an error's `details`) pass.
 */
export type ContractIsJsonOnly = [
  JsonOnly<CarriesBinary<ServerEvents[keyof ServerEvents]>>,
  JsonOnly<CarriesBinary<{ [K in keyof Commands]: Ack<Commands[K][1]> }[keyof Commands]>>,
];
