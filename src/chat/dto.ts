import { IntersectionType, PickType } from '@nestjs/swagger';
import { IsJWT, IsString, Matches, MaxLength } from 'class-validator';
import {
  CLIENT_MSG_ID_PATTERN,
  CONTENT_HARD_CAP,
  EditMessageDto,
  IsCursor,
  ReactionParams,
  REMOVAL_REASON_MAX,
  SendMessageDto,
} from '../messages/dto/message.dto';
import { CreateReportDto } from '../moderation/dto/report.dto';
import { PageLimit } from '../common/pagination';
import { LONE_SURROGATE, IsId, Omittable, QueryBoolean } from '../common/validation';
import type { SameShape } from '../common/wire';
import type * as Wire from '../common/wire';

/** Socket command payloads: class-validator DTOs, reusing the REST ones where the shape is shared. */
export class RoomPayload implements Wire.RoomPayload {
  @IsId()
  roomId: string;
}

export class RoomJoinPayload extends RoomPayload implements Wire.RoomJoinPayload {
  /** The last change version the client saw; omitted → the latest page. */
  @Omittable()
  @IsCursor()
  since?: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;
const SEND_KEYS = new Set(['roomId', 'clientMsgId', 'content', 'replyToId']);

export class MessageSendPayload
  extends IntersectionType(RoomPayload, SendMessageDto)
  implements Wire.MessageSendPayload
{
  /**
   * Validation of the hot path (every message sent over a socket) without class-transformer and
   * class-validator, which took 18 % of the server's CPU under load. Accepts only payloads the
   * decorators accept too, with the same result (a property test holds it to that); anything
   * else is `undefined` and goes through the full pipe, which also words the errors.
   */
  static fastParse(this: void, v: unknown): MessageSendPayload | undefined {
    if (typeof v !== 'object' || v === null || Object.getPrototypeOf(v) !== Object.prototype)
      return undefined;
    for (const key in v) if (!SEND_KEYS.has(key)) return undefined;
    const { roomId, clientMsgId, content, replyToId } = v as Record<string, unknown>;
    if (typeof roomId !== 'string' || !UUID.test(roomId)) return undefined;
    if (typeof clientMsgId !== 'string' || !CLIENT_MSG_ID_PATTERN.test(clientMsgId))
      return undefined;
    if (typeof content !== 'string' || content.length > CONTENT_HARD_CAP) return undefined;
    if (LONE_SURROGATE.test(content)) return undefined;
    const text = content.trim();
    if (!text) return undefined;
    const id = roomId.toLowerCase(); // as IsId keeps it
    if (replyToId === undefined) return { roomId: id, clientMsgId, content: text };
    if (!Number.isSafeInteger(replyToId) || (replyToId as number) < 0) return undefined;
    return { roomId: id, clientMsgId, content: text, replyToId: replyToId as number };
  }
}

export class MessageEditPayload extends EditMessageDto implements Wire.MessageEditPayload {
  @IsCursor()
  messageId: number;
}

export class MessageDeletePayload implements Wire.MessageDeletePayload {
  @IsCursor()
  messageId: number;

  @Omittable()
  @IsString()
  @MaxLength(REMOVAL_REASON_MAX)
  reason?: string;
}

export class MessageReportPayload extends CreateReportDto implements Wire.MessageReportPayload {
  @IsCursor()
  messageId: number;
}

export class ReactionPayload
  extends PickType(ReactionParams, ['emoji'] as const)
  implements Wire.ReactionPayload
{
  @IsCursor()
  messageId: number;
}

export class ReadMarkPayload extends RoomPayload implements Wire.ReadMarkPayload {
  @IsCursor()
  messageId: number;
}

export class NotificationReadPayload implements Wire.NotificationReadPayload {
  @Omittable()
  @IsCursor()
  id?: number;

  @Omittable()
  @IsId()
  roomId?: string;
}

export class HistoryFetchPayload extends RoomPayload implements Wire.HistoryFetchPayload {
  @Omittable()
  @IsCursor()
  before?: number;

  @Omittable()
  @IsCursor()
  after?: number;

  @PageLimit(200)
  limit?: number;
}

export class ThreadFetchPayload implements Wire.ThreadFetchPayload {
  @IsCursor()
  messageId: number;

  @Omittable()
  @IsCursor()
  after?: number;

  @Omittable()
  @IsCursor()
  before?: number;

  @Omittable()
  @QueryBoolean()
  latest?: boolean;

  @PageLimit(200)
  limit?: number;
}

export class PersonaCancelPayload implements Wire.PersonaCancelPayload {
  @IsString()
  @MaxLength(64)
  @Matches(/^[A-Za-z0-9-]+$/)
  messageId: string;
}

export class AuthRefreshPayload implements Wire.AuthRefreshPayload {
  @IsJWT()
  accessToken: string;
}

/** The payload classes have exactly the fields of their wire shapes (src/common/wire.ts). */
const _wire: [
  SameShape<RoomPayload, Wire.RoomPayload>,
  SameShape<RoomJoinPayload, Wire.RoomJoinPayload>,
  SameShape<MessageSendPayload, Wire.MessageSendPayload>,
  SameShape<MessageEditPayload, Wire.MessageEditPayload>,
  SameShape<MessageDeletePayload, Wire.MessageDeletePayload>,
  SameShape<MessageReportPayload, Wire.MessageReportPayload>,
  SameShape<ReactionPayload, Wire.ReactionPayload>,
  SameShape<ReadMarkPayload, Wire.ReadMarkPayload>,
  SameShape<HistoryFetchPayload, Wire.HistoryFetchPayload>,
  SameShape<ThreadFetchPayload, Wire.ThreadFetchPayload>,
  SameShape<PersonaCancelPayload, Wire.PersonaCancelPayload>,
  SameShape<AuthRefreshPayload, Wire.AuthRefreshPayload>,
  SameShape<NotificationReadPayload, Wire.NotificationReadPayload>,
] = [true, true, true, true, true, true, true, true, true, true, true, true, true];
