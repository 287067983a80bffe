import type { Socket as NetSocket } from 'node:net';
import type { Server } from 'socket.io';

/**
 * One write per socket per event-loop turn (WS_COALESCE_WRITES, on by default).
 *
 * Socket.IO writes each packet to the websocket as soon as it is emitted: a sender's ack and
 * its own `message.created` are two system calls, and so are two messages of one send batch to
 * the same member. On loopback and in VMs the write call (which wakes the receiver) is most of
 * the server's CPU per message (docs/benchmarks.md). Here each websocket's TCP socket is corked
 * at its first packet of a turn and uncorked once, after the turn's I/O callbacks
 * (`setImmediate`), so everything it got in that turn leaves in one `writev`, in order.
 *
 * engine.io marks a websocket transport unwritable from each send until the kernel took it,
 * buffering later packets for a second flush: that would undo the batching, so the transport
 * stays writable while the TCP socket holds less than its high-water mark (16 KiB). ws orders
 * its frames itself, and engine.io's send callbacks still pair with its flushes (one `drain`
 * per send). Past the mark (a client that stopped reading, or a very large turn) engine.io
 * buffers as it always did until the socket drains.
 */
export function coalesceWebSocketWrites(server: Server): void {
  server.engine.on('connection', (conn: EngineSocket) => {
    corkTransport(conn.transport);
    conn.on('upgrade', (transport: Transport) => corkTransport(transport));
  });
}

interface Transport {
  name: string;
  writable: boolean;
  send: (this: Transport, packets: unknown[]) => void;
  /** The `ws` WebSocket of a websocket transport, and its TCP socket. */
  socket?: { _socket?: NetSocket };
}

interface EngineSocket {
  transport: Transport;
  on(event: 'upgrade', listener: (transport: Transport) => void): void;
}

const corked = new Set<NetSocket>();
let uncorkScheduled = false;

function corkTransport(transport: Transport): void {
  const raw = transport.socket?._socket;
  if (transport.name !== 'websocket' || !raw) return;
  const send = transport.send;
  transport.send = function (this: Transport, packets: unknown[]): void {
    if (!corked.has(raw) && !raw.destroyed) {
      raw.cork();
      corked.add(raw);
      if (!uncorkScheduled) {
        uncorkScheduled = true;
        setImmediate(uncorkAll);
      }
    }
    send.call(this, packets);
    // Writable again at once while the kernel keeps up. A client that stops reading falls back
    // to engine.io's own buffering past the socket's high-water mark: engine.io drops that
    // buffer when it closes the connection (ping timeout), and `volatile` emits drop again.
    this.writable = raw.writableLength < raw.writableHighWaterMark && !raw.destroyed;
  };
}

function uncorkAll(): void {
  const sockets = [...corked];
  corked.clear();
  uncorkScheduled = false;
  for (const raw of sockets) {
    try {
      raw.uncork();
    } catch {
      // A failed write reaches its stream's error handler; the other sockets still flush.
    }
  }
}
