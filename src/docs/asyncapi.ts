/**
 * The socket contract as an AsyncAPI 3.0 document, built at boot from the same definitions the
 * gateway uses: command and event names from `COMMAND_NAMES` / `SERVER_EVENT_NAMES`, command
 * payload schemas from the class-validator DTOs in `chat/dto.ts`, message/room/member schemas
 * from the Swagger document (the REST DTOs), and the rest from typed schemas checked against
 * `chat/contract.ts` at compile time (see ./schema.ts).
 */
import type { INestApplication } from '@nestjs/common';
import type { OpenAPIObject } from '@nestjs/swagger';
import { targetConstructorToSchema } from 'class-validator-jsonschema';
import type { Request, Response } from 'express';
import {
  COMMAND_NAMES,
  SERVER_EVENT_NAMES,
  type CommandName,
  type Commands,
  type ServerEventName,
  type ServerEvents,
} from '../chat/contract';
import * as payloads from '../chat/dto';
import { ErrorCode } from '../common/errors';
import {
  FINISH_REASONS,
  HistoryPageDto,
  ThreadPageDto,
  MessageDto,
  ReactionSummaryDto,
} from '../messages/dto/message.dto';
import { MemberDto, ReadStateDto, RoomDto, RoomUpdatedDto } from '../rooms/dto/room.dto';
import { ReportDto } from '../moderation/dto/report.dto';
import { NotificationDto } from '../notifications/dto/notification.dto';
import { renderAsyncApiHtml } from './asyncapi-html';
import { type JsonSchema, type Schema, s } from './schema';

const uuid = () => s.string({ format: 'uuid' });
const cursor = () => s.integer({ minimum: 0 });

const reactionsResult = s.object({
  messageId: cursor(),
  version: cursor(),
  reactions: s.array(s.ref(ReactionSummaryDto)),
});

/** member.muted and member.banned. */
const sanctionEvent = s.object({
  roomId: uuid(),
  userId: uuid(),
  until: s.describe(s.nullable(s.string({ format: 'date-time' })), 'null: until lifted'),
  reason: s.optional(
    s.describe(s.string(), "Only to the sanctioned user and the room's moderators and admins"),
  ),
  by: uuid(),
});
/** member.unmuted and member.unbanned. */
const liftedEvent = s.object({ roomId: uuid(), userId: uuid(), by: uuid() });
/** room.archived and room.unarchived. */
const archiveEvent = s.object({
  roomId: uuid(),
  archivedAt: s.nullable(s.string({ format: 'date-time' })),
  by: uuid(),
});

interface CommandDoc<K extends CommandName> {
  summary: string;
  payload: Schema<Commands[K][0]>;
  result: Schema<Commands[K][1]>;
}
interface EventDoc<K extends ServerEventName> {
  summary: string;
  payload: Schema<ServerEvents[K]>;
}

/** Every command: the mapped type makes a missing command or a wrong schema a compile error. */
export const COMMAND_DOCS: { [K in CommandName]: CommandDoc<K> } = {
  'room.join': {
    summary:
      'Open a room (joining a public one; admins open any room without joining it): the room, ' +
      'members, who is online and messages. ' +
      'Without `since`: the latest page. With `since` (the `cursor` you kept): every message ' +
      'created or changed after it, in version order; repeat with the new cursor while `hasMore`.',
    payload: s.ref(payloads.RoomJoinPayload),
    result: s.object({
      room: s.ref(RoomDto),
      members: s.array(s.ref(MemberDto)),
      online: s.describe(s.array(uuid()), 'Ids of members with at least one connected socket'),
      messages: s.array(s.ref(MessageDto)),
      hasMore: s.boolean(),
      cursor: s.describe(cursor(), 'The change cursor to keep and pass as `since` next time'),
      streams: s.describe(
        s.array(
          s.object({
            messageId: s.string(),
            roomId: uuid(),
            personaId: uuid(),
            replyToId: s.nullable(cursor()),
            text: s.describe(s.string(), 'The reply so far'),
            nextSeq: s.describe(
              s.integer({ minimum: 0 }),
              'Apply the persona.stream.delta events with seq >= nextSeq, in order',
            ),
          }),
        ),
        'Persona replies streaming in the room now (with or without `since`); each ends with ' +
          'persona.stream.end. See docs/personas.md',
      ),
    }),
  },
  'room.leave': {
    summary:
      'Leave the room (membership and subscription). Its owner cannot (`FORBIDDEN`), nor a ' +
      'muted member.',
    payload: s.ref(payloads.RoomPayload),
    result: s.null(),
  },
  'message.send': {
    summary:
      'Send a message. Idempotent per `clientMsgId`: a retry returns the first stored message ' +
      'and is not broadcast again. Rate-limited per user, together with REST sends ' +
      '(`RATE_LIMITED` with `retryAfterMs`); every other write has its own per-user bucket.',
    payload: s.ref(payloads.MessageSendPayload),
    result: s.ref(MessageDto),
  },
  'message.edit': {
    summary:
      'Edit one of your messages (the previous text is kept in its edit history). At most ' +
      'MESSAGE_MAX_EDITS edits per message, then `CONFLICT`; a deleted message is `NOT_FOUND`.',
    payload: s.ref(payloads.MessageEditPayload),
    result: s.ref(MessageDto),
  },
  'message.delete': {
    summary:
      "Delete a message (the author; the room's owner and moderators and admins: anyone's, with " +
      'an optional `reason` shown to its author and the moderators); it stays as a tombstone.',
    payload: s.ref(payloads.MessageDeletePayload),
    result: s.null(),
  },
  'message.report': {
    summary:
      'Report a message you can read (not your own; not in conversations), once (again: ' +
      '`CONFLICT`). The room moderators and the admins get `report.created`.',
    payload: s.ref(payloads.MessageReportPayload),
    result: s.ref(ReportDto),
  },
  'reaction.add': {
    summary:
      'React to a message with an emoji (or a :shortcode:); an invisible one (only joiners or ' +
      'variation selectors) is `VALIDATION_FAILED`, a deleted message `NOT_FOUND`; a new emoji ' +
      'on a message that has MESSAGE_MAX_REACTIONS different ones already is `CONFLICT`.',
    payload: s.ref(payloads.ReactionPayload),
    result: reactionsResult,
  },
  'reaction.remove': {
    summary: 'Take your reaction back.',
    payload: s.ref(payloads.ReactionPayload),
    result: reactionsResult,
  },
  'typing.start': {
    summary: 'You are typing in the room; ends by itself after a few seconds (TYPING_TIMEOUT_MS).',
    payload: s.ref(payloads.RoomPayload),
    result: s.null(),
  },
  'typing.stop': {
    summary: 'You stopped typing.',
    payload: s.ref(payloads.RoomPayload),
    result: s.null(),
  },
  'read.mark': {
    summary: 'Mark the room read up to a message; never moves backwards.',
    payload: s.ref(payloads.ReadMarkPayload),
    result: s.ref(ReadStateDto),
  },
  'notification.read': {
    summary:
      "Mark your notifications read: one (`id`; not yours: `NOT_FOUND`), one room's " +
      '(`roomId`), or all (neither). Your sockets get `notifications.read` with the ids.',
    payload: s.ref(payloads.NotificationReadPayload),
    result: s.object({ marked: s.integer({ minimum: 0 }) }),
  },
  'history.fetch': {
    summary: 'A page of history (chronological): `before` an id for older, `after` for newer.',
    payload: s.ref(payloads.HistoryFetchPayload),
    result: s.ref(HistoryPageDto),
  },
  'thread.fetch': {
    summary:
      'A thread (`messageId`: its root or any reply): the root with its counters, a page of ' +
      'replies oldest first (the first; `after` a `nextCursor`; `latest: true`, the last; ' +
      '`before` a `prevCursor`), and whether you follow it.',
    payload: s.ref(payloads.ThreadFetchPayload),
    result: s.ref(ThreadPageDto),
  },
  'persona.cancel': {
    summary: 'Stop a persona reply that is streaming (the `messageId` of persona.stream.start).',
    payload: s.ref(payloads.PersonaCancelPayload),
    result: s.null(),
  },
  'auth.refresh': {
    summary:
      'Hand the socket a newer access token of the same user before the current one expires; ' +
      'otherwise the server closes the socket with session.revoked `token_expired` (also at the ' +
      "session's end, which no refresh moves: `expiresAt` is the earlier of the two). A token of " +
      "another of the user's sessions moves the socket to that session; a socket's refreshes run " +
      'one after another. Rate-limited per user ' +
      '(`RATE_LIMIT_REFRESH`: `RATE_LIMITED` with `retryAfterMs`).',
    payload: s.ref(payloads.AuthRefreshPayload),
    result: s.object({ expiresAt: s.describe(s.integer(), 'ms since the epoch') }),
  },
};

/** Every server event, likewise checked against the contract. */
export const EVENT_DOCS: { [K in ServerEventName]: EventDoc<K> } = {
  'message.created': {
    summary: 'A message was posted in a room you are in.',
    payload: s.ref(MessageDto),
  },
  'message.updated': { summary: 'A message was edited.', payload: s.ref(MessageDto) },
  'message.deleted': {
    summary:
      'A message was deleted: the tombstone (`deletedAt` set, no content). Removed by a ' +
      'moderator: `removedByModeration: true`, and `removalReason` only for its author and the ' +
      "room's moderators and admins (sent to their own sockets, even outside the room).",
    payload: s.ref(MessageDto),
  },
  'reaction.updated': {
    summary: "A message's reactions changed (who, which emoji, added or removed).",
    payload: s.object({
      roomId: uuid(),
      messageId: cursor(),
      version: cursor(),
      reactions: s.array(s.ref(ReactionSummaryDto)),
      userId: uuid(),
      emoji: s.string(),
      added: s.boolean(),
    }),
  },
  'thread.updated': {
    summary:
      "A reply was written in a thread of a room you are in: the root's counters after it " +
      '(once per committed batch of replies; a larger `version` is newer).',
    payload: s.object({
      roomId: uuid(),
      rootId: cursor(),
      version: cursor(),
      replyCount: s.integer({ minimum: 1 }),
      lastReplyAt: s.string({ format: 'date-time' }),
      participants: s.describe(s.array(uuid()), 'The last 5 distinct repliers, most recent first'),
    }),
  },
  typing: {
    summary:
      'Someone started or stopped typing in a room (never sent to the typist). Personas too ' +
      "(`persona: true`, `userId` the persona's id, `username` its handle): `state` 'thinking' " +
      "before the first token, 'writing' while the reply streams, then `typing: false`.",
    payload: s.object({
      roomId: uuid(),
      userId: uuid(),
      username: s.string(),
      typing: s.boolean(),
      persona: s.optional(s.literalTrue()),
      state: s.optional(s.literal('thinking', 'writing')),
    }),
  },
  'presence.changed': {
    summary: 'A member of one of your rooms came online or went offline (all their sockets).',
    payload: s.object({ userId: uuid(), online: s.boolean() }),
  },
  'member.joined': {
    summary: 'Someone joined a room you are in.',
    payload: s.object({
      roomId: uuid(),
      user: s.object({ id: uuid(), username: s.string(), displayName: s.nullable(s.string()) }),
    }),
  },
  'member.left': {
    summary: 'Someone left or was removed (also sent to the one removed).',
    payload: s.object({ roomId: uuid(), userId: uuid(), reason: s.literal('left', 'removed') }),
  },
  'read.updated': {
    summary: 'Your read marker moved (syncs your other tabs and devices).',
    payload: s.object({ roomId: uuid(), userId: uuid(), lastReadMessageId: cursor() }),
  },
  'member.muted': {
    summary:
      'A member of a room you are in was muted (they still read; sends, edits and reactions ' +
      'answer FORBIDDEN with `details: { reason, until }`).',
    payload: sanctionEvent,
  },
  'member.unmuted': {
    summary: 'A mute was lifted by a moderator (an expired mute ends silently).',
    payload: liftedEvent,
  },
  'member.banned': {
    summary:
      'A user was banned from a room (sent to the room and to the user, whose sockets leave ' +
      'the room first); they cannot rejoin or be added until unbanned or `until`.',
    payload: sanctionEvent,
  },
  'member.unbanned': {
    summary: 'A ban was lifted (sent to the room and to the user).',
    payload: liftedEvent,
  },
  'member.role.changed': {
    summary: "A member's role in the room changed (moderator or member).",
    payload: s.object({
      roomId: uuid(),
      userId: uuid(),
      role: s.literal('owner', 'moderator', 'member'),
      by: uuid(),
    }),
  },
  'room.archived': {
    summary: 'A room you are in was archived: read-only for everyone until unarchived.',
    payload: archiveEvent,
  },
  'room.unarchived': {
    summary: 'A room you are in was unarchived (`archivedAt` null): writable again.',
    payload: archiveEvent,
  },
  'room.created': {
    summary: 'A room you can see was created (public group rooms: everyone is told).',
    payload: s.ref(RoomDto),
  },
  'room.updated': {
    summary:
      'A room you are in changed: the room as every member sees it, without `joined` and ' +
      '`myRole` (keep your own; your role changes come as member.role.changed).',
    payload: s.ref(RoomUpdatedDto),
  },
  'room.deleted': {
    summary: 'A room you are in was deleted; its sockets are taken out of it.',
    payload: s.object({ roomId: uuid() }),
  },
  'persona.stream.start': {
    summary: 'A persona started replying; deltas follow, then persona.stream.end.',
    payload: s.object({
      messageId: s.describe(s.string(), 'Id of this stream (not the persisted message id)'),
      roomId: uuid(),
      personaId: uuid(),
      replyToId: s.describe(s.nullable(cursor()), 'The message that triggered the reply'),
    }),
  },
  'persona.stream.delta': {
    summary: 'The next piece of a persona reply; apply in `seq` order.',
    payload: s.object({
      messageId: s.string(),
      roomId: uuid(),
      seq: s.integer({ minimum: 0 }),
      delta: s.string(),
    }),
  },
  'persona.stream.end': {
    summary: 'A persona reply ended; `message` is the persisted message (also message.created).',
    payload: s.object({
      messageId: s.string(),
      roomId: uuid(),
      finishReason: s.literal(...FINISH_REASONS),
      message: s.nullable(s.ref(MessageDto)),
    }),
  },
  'session.revoked': {
    summary:
      'Your session ended (`logout`, `user_disabled`, `suspended`, `token_expired`, …); the ' +
      'socket closes next.',
    payload: s.object({ reason: s.string() }),
  },
  'report.created': {
    summary: "A member reported a message (to the room's owner and moderators, and the admins).",
    payload: s.ref(ReportDto),
  },
  'report.resolved': {
    summary:
      "A report was resolved or dismissed (to the room's owner and moderators, and the admins).",
    payload: s.ref(ReportDto),
  },
  'notification.created': {
    summary:
      'A notification for you (to your sockets only): a mention, a direct message, a reply in ' +
      'a thread you follow, or a message of a room at level `all`. Also in GET /notifications.',
    payload: s.ref(NotificationDto),
  },
  'notifications.read': {
    summary:
      'These of your notifications were marked read (one, all, a room, by reading the room up ' +
      'to them, or because the message was deleted), on any of your devices.',
    payload: s.object({ ids: s.array(cursor()) }),
  },
  'server.shutdown': {
    summary: 'This instance is shutting down: reconnect (to another one) after `retryAfterMs`.',
    payload: s.object({ retryAfterMs: s.integer({ minimum: 0 }) }),
  },
};

const ACK_ERROR: JsonSchema = {
  type: 'object',
  description: 'Switch on `code`; `message` is for people.',
  properties: {
    code: { type: 'string', enum: Object.values(ErrorCode) },
    message: { type: 'string' },
    retryAfterMs: { type: 'integer', description: 'With RATE_LIMITED: wait this long' },
    details: {
      description:
        'With VALIDATION_FAILED: messages per field; with FORBIDDEN for a mute or a ban: ' +
        '`{ reason, until }` (until: ISO 8601, or null until lifted)',
    },
  },
  required: ['code', 'message'],
};

function ackOf(data: JsonSchema): JsonSchema {
  return {
    oneOf: [
      {
        type: 'object',
        properties: { ok: { const: true }, data },
        required: ['ok', 'data'],
      },
      {
        type: 'object',
        properties: { ok: { const: false }, error: { $ref: '#/components/schemas/AckError' } },
        required: ['ok', 'error'],
      },
    ],
  };
}

/** OpenAPI 3.0 schema → JSON Schema (what AsyncAPI's default schema format is). */
function fromOpenApi(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(fromOpenApi);
  if (!value || typeof value !== 'object') return value;
  const { nullable, example, ...rest } = value as JsonSchema;
  const out: JsonSchema = {};
  for (const [k, v] of Object.entries(rest)) out[k] = fromOpenApi(v);
  if (example !== undefined) out.examples = [example];
  if (!nullable) return out;
  if (typeof out.type === 'string' && !out.allOf && !out.$ref) {
    out.type = [out.type, 'null'];
    if (Array.isArray(out.enum)) out.enum = [...(out.enum as unknown[]), null];
    return out;
  }
  // `{ nullable, allOf: [{ $ref }] }` (Swagger's nullable reference).
  const { description, allOf, $ref, type: _type, ...other } = out;
  const inner = $ref
    ? { $ref }
    : allOf && (allOf as unknown[]).length === 1
      ? (allOf as unknown[])[0]
      : { allOf };
  return { ...(description ? { description } : {}), ...other, oneOf: [inner, { type: 'null' }] };
}

/** Names of the component schemas a schema refers to, transitively. */
function collectRefs(schema: unknown, pool: Record<string, unknown>, into = new Set<string>()) {
  if (Array.isArray(schema)) schema.forEach((v) => collectRefs(v, pool, into));
  else if (schema && typeof schema === 'object') {
    for (const [k, v] of Object.entries(schema)) {
      if (k === '$ref' && typeof v === 'string') {
        const name = v.replace('#/components/schemas/', '');
        if (!into.has(name)) {
          into.add(name);
          collectRefs(pool[name], pool, into);
        }
      } else collectRefs(v, pool, into);
    }
  }
  return into;
}

/** JSON schemas of the command payload DTOs, from their class-validator rules. */
function payloadSchemas(): Record<string, JsonSchema> {
  const out: Record<string, JsonSchema> = {};
  for (const cls of Object.values(payloads)) {
    if (typeof cls !== 'function') continue;
    const schema = targetConstructorToSchema(cls, {
      // Min/Max must not turn IsInt's integer back into a number.
      additionalConverters: {
        min: (meta) => ({ minimum: meta.constraints[0] as number }),
        max: (meta) => ({ maximum: meta.constraints[0] as number }),
      },
    }) as JsonSchema;
    // The validation pipe rejects unknown fields (forbidNonWhitelisted).
    out[cls.name] = { ...schema, additionalProperties: false };
  }
  return out;
}

export type AsyncApiDocument = JsonSchema & {
  channels: { chat: JsonSchema & { messages: Record<string, unknown> } };
  operations: Record<string, JsonSchema>;
  components: JsonSchema & {
    messages: Record<string, JsonSchema>;
    schemas: Record<string, JsonSchema>;
  };
};

export function buildAsyncApi(openapi: OpenAPIObject, host = 'localhost:3000'): AsyncApiDocument {
  const messages: Record<string, JsonSchema> = {};
  const operations: Record<string, JsonSchema> = {};
  const chat = { $ref: '#/channels/chat' };
  const msgRef = (name: string) => ({ $ref: `#/channels/chat/messages/${name}` });

  for (const name of COMMAND_NAMES) {
    const doc = COMMAND_DOCS[name] as CommandDoc<CommandName>;
    messages[name] = { name, title: name, summary: doc.summary, payload: doc.payload.json };
    messages[`${name}.ack`] = {
      name: `${name}.ack`,
      title: `${name} acknowledgement`,
      summary: `The acknowledgement of ${name}: \`{ ok: true, data }\` or \`{ ok: false, error }\`.`,
      payload: ackOf(doc.result.json),
    };
    operations[name] = {
      action: 'receive',
      channel: chat,
      title: name,
      summary: doc.summary,
      description: `Client → server: \`socket.emit('${name}', payload, ack)\`.`,
      messages: [msgRef(name)],
      reply: { channel: chat, messages: [msgRef(`${name}.ack`)] },
    };
  }
  for (const name of SERVER_EVENT_NAMES) {
    const doc = EVENT_DOCS[name] as EventDoc<ServerEventName>;
    messages[name] = { name, title: name, summary: doc.summary, payload: doc.payload.json };
    operations[name] = {
      action: 'send',
      channel: chat,
      title: name,
      summary: doc.summary,
      description: `Server → client: \`socket.on('${name}', handler)\`.`,
      messages: [msgRef(name)],
    };
  }

  const pool: Record<string, unknown> = {
    ...(fromOpenApi(openapi.components?.schemas ?? {}) as Record<string, unknown>),
    ...payloadSchemas(),
    AckError: ACK_ERROR,
  };
  const used = collectRefs(messages, pool);
  const schemas: Record<string, JsonSchema> = {};
  for (const name of [...used].sort()) {
    if (!pool[name]) throw new Error(`AsyncAPI: no schema for ${name}`);
    schemas[name] = pool[name] as JsonSchema;
  }

  return {
    asyncapi: '3.0.0',
    info: {
      title: 'Parlor socket API',
      version: '1',
      description: [
        'Live chat over Socket.IO 4 (default namespace, path `/socket.io`).',
        '',
        'Authenticate in the handshake: `io(url, { auth: { token: accessToken } })` (or an',
        '`Authorization: Bearer` header, or `?token=`). A bad token fails the connection with',
        '`connect_error` whose `data.code` is `UNAUTHORIZED` or `TOKEN_EXPIRED`.',
        '',
        'Every command takes an acknowledgement callback that receives `{ ok: true, data }` or',
        '`{ ok: false, error: { code, message, retryAfterMs? } }`. Events carry the same objects',
        'as the REST API (see `/docs`). A typed client lives in `client/` of the repository.',
        '',
        `Finish reasons of persona replies: ${FINISH_REASONS.join(', ')}.`,
      ].join('\n'),
    },
    defaultContentType: 'application/json',
    servers: {
      parlor: {
        host,
        protocol: 'ws',
        pathname: '/socket.io',
        description:
          'Socket.IO 4 (Engine.IO 4): connect with a Socket.IO client, not a bare WebSocket.',
        security: [{ $ref: '#/components/securitySchemes/accessToken' }],
      },
    },
    channels: {
      chat: {
        address: '/',
        title: 'Default namespace',
        description: 'All commands and events travel on the default namespace.',
        messages: Object.fromEntries(
          Object.keys(messages).map((k) => [k, { $ref: `#/components/messages/${k}` }]),
        ),
      },
    },
    operations,
    components: {
      messages,
      schemas,
      securitySchemes: {
        accessToken: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: 'The access token from POST /api/v1/auth/login, in `auth.token`.',
        },
      },
    },
  };
}

/** GET /docs/asyncapi.json and GET /docs/asyncapi (HTML), public like Swagger's own routes. */
export function setupAsyncApi(app: INestApplication, openapi: OpenAPIObject): void {
  const doc = buildAsyncApi(openapi);
  const html = renderAsyncApiHtml(doc);
  const http = app.getHttpAdapter();
  http.get('/docs/asyncapi.json', (req: Request, res: Response) => {
    const host = req.get('host');
    const servers = {
      parlor: {
        ...(doc.servers as { parlor: JsonSchema }).parlor,
        host,
        protocol: req.protocol === 'https' ? 'wss' : 'ws',
      },
    };
    res.json({ ...doc, servers });
  });
  http.get('/docs/asyncapi', (_req: Request, res: Response) => {
    res.type('html').send(html);
  });
}
