/**
 * The bare reference: the same socket.io version as Parlor, rooms and one broadcast per
 * message, no auth, no validation, no database. What the harness measures Parlor against, in
 * the same run, so every result is a ratio on this machine rather than an absolute number.
 *
 * It speaks the `message.send` slice of Parlor's contract (same payload, same ack shape, a
 * message.created event of the same shape), so the load workers drive both the same way.
 * Clients pass the rooms to join in the handshake: `auth: { rooms: ['<roomId>', …] }`.
 *
 *   node .bench-build/bench/reference-server.js   → prints "reference listening on http://…"
 */
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import type { ClientToServer, ServerToClient } from '../../src/chat/contract';
import type { MessageDto } from '../../src/messages/dto/message.dto';

const port = Number(process.env.PORT ?? 0);
const host = process.env.HOST ?? '127.0.0.1';

const http = createServer((_req, res) => {
  res.writeHead(404).end();
});
const io = new Server<ClientToServer, ServerToClient>(http, {
  path: '/socket.io',
  maxHttpBufferSize: 65536, // Parlor's WS_MAX_PAYLOAD_BYTES default
});

let nextId = 0;

io.on('connection', (socket) => {
  const rooms = (socket.handshake.auth as { rooms?: unknown }).rooms;
  if (Array.isArray(rooms)) void socket.join(rooms.map((r) => `room:${String(r)}`));
  socket.on('message.send', (payload, ack) => {
    const id = ++nextId;
    const message: MessageDto = {
      id,
      version: id,
      roomId: payload.roomId,
      author: { id: socket.id, kind: 'user', username: 'ref', displayName: null },
      role: 'user',
      content: payload.content,
      replyToId: null,
      clientMsgId: payload.clientMsgId,
      reactions: [],
      mentions: [],
      threadRootId: null,
      attachments: [],
      createdAt: new Date(),
      editedAt: null,
      deletedAt: null,
    };
    io.to(`room:${payload.roomId}`).emit('message.created', message);
    ack?.({ ok: true, data: message });
  });
});

http.listen(port, host, () => {
  const addr = http.address();
  const bound = typeof addr === 'object' && addr ? addr.port : port;
  process.stdout.write(`reference listening on http://${host}:${bound}\n`);
});

process.on('SIGTERM', () => {
  void io.close();
  http.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
