import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import type { Server } from 'socket.io';
import { coalesceWebSocketWrites } from './write-coalescing';

/**
 * The transport patch over a stand-in TCP socket (a Writable that records its writes and, when
 * `stalled`, never finishes one: a client that stopped reading).
 */
function setup(stalled = false) {
  const writes: string[][] = [];
  const raw = new Writable({
    highWaterMark: 64,
    writev(chunks, cb) {
      writes.push(chunks.map((c) => String(c.chunk)));
      if (!stalled) cb();
    },
    write(chunk, _enc, cb) {
      writes.push([String(chunk)]);
      if (!stalled) cb();
    },
  });
  const transport = {
    name: 'websocket',
    writable: true,
    socket: { _socket: raw },
    send(packets: string[]) {
      this.writable = false; // as engine.io's: unwritable until the write's callback
      for (const p of packets) raw.write(p);
    },
  };
  const engine = new EventEmitter();
  coalesceWebSocketWrites({ engine } as unknown as Server);
  const conn = Object.assign(new EventEmitter(), { transport });
  engine.emit('connection', conn);
  return { writes, transport, raw };
}

const turn = () => new Promise((r) => setImmediate(r));

describe('coalesceWebSocketWrites', () => {
  it('sends of one turn leave in one write, in order, at the end of the turn', async () => {
    const { writes, transport } = setup();
    transport.send(['a']);
    transport.send(['b']);
    transport.send(['c', 'd']);
    expect(transport.writable).toBe(true);
    expect(writes).toEqual([]);
    await turn();
    expect(writes).toEqual([['a', 'b', 'c', 'd']]);
    transport.send(['e']);
    await turn();
    expect(writes).toEqual([['a', 'b', 'c', 'd'], ['e']]);
  });

  it("past the socket's high-water mark the transport is unwritable (engine.io buffers)", async () => {
    const { transport, raw } = setup(true);
    transport.send(['x'.repeat(10)]);
    expect(transport.writable).toBe(true);
    transport.send(['y'.repeat(100)]);
    expect(transport.writable).toBe(false);
    await turn();
    expect(raw.writableLength).toBeGreaterThanOrEqual(110);
  });

  it('a destroyed socket leaves the transport unwritable, and the turn still ends', async () => {
    const { transport, raw } = setup();
    transport.send(['a']);
    raw.destroy();
    raw.on('error', () => {});
    transport.send(['b']);
    expect(transport.writable).toBe(false);
    await turn();
  });
});
