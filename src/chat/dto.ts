import { IntersectionType, PickType } from '@nestjs/swagger';
import { IsJWT, IsOptional, IsString, IsUUID, Matches, MaxLength } from 'class-validator';
import {
  EditMessageDto,
  IsCursor,
  ReactionParams,
  SendMessageDto,
} from '../messages/dto/message.dto';
import { PageLimit } from '../common/pagination';

/** Socket command payloads: class-validator DTOs, reusing the REST ones where the shape is shared. */
export class RoomPayload {
  @IsUUID()
  roomId: string;
}

export class RoomJoinPayload extends RoomPayload {
  /** The last change version the client saw; omitted → the latest page. */
  @IsOptional()
  @IsCursor()
  since?: number;
}

export class MessageSendPayload extends IntersectionType(RoomPayload, SendMessageDto) {}

export class MessageEditPayload extends EditMessageDto {
  @IsCursor()
  messageId: number;
}

export class MessageDeletePayload {
  @IsCursor()
  messageId: number;
}

export class ReactionPayload extends PickType(ReactionParams, ['emoji'] as const) {
  @IsCursor()
  messageId: number;
}

export class ReadMarkPayload extends RoomPayload {
  @IsCursor()
  messageId: number;
}

export class HistoryFetchPayload extends RoomPayload {
  @IsOptional()
  @IsCursor()
  before?: number;

  @IsOptional()
  @IsCursor()
  after?: number;

  @PageLimit(200)
  limit?: number;
}

export class PersonaCancelPayload {
  @IsString()
  @MaxLength(64)
  @Matches(/^[A-Za-z0-9-]+$/)
  messageId: string;
}

export class AuthRefreshPayload {
  @IsJWT()
  accessToken: string;
}
