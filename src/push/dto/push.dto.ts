import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  IsBoolean,
  IsIn,
  IsOptional,
  IsString,
  Matches,
  MaxLength,
  MinLength,
} from 'class-validator';
import { IsId } from '../../common/validation';

export const PUSHER_KINDS = ['http'] as const;

/** Registers a device (the Matrix pusher model): upserted by (appId, pushKey). */
export class CreatePusherDto {
  @ApiProperty({ enum: PUSHER_KINDS, example: 'http', description: 'The only kind: HTTP POST' })
  @IsIn(PUSHER_KINDS)
  kind: 'http';

  @ApiProperty({
    example: 'https://push.example.com/_parlor/push/v1/notify',
    maxLength: 2048,
    description:
      "The operator's push gateway (to FCM/APNs). https: only (http: when PUSH_ALLOW_HTTP); " +
      'a host in PUSH_ALLOWED_HOSTS, or when that is empty any host resolving to public ' +
      'addresses only',
  })
  @IsString()
  @MinLength(1)
  @MaxLength(2048)
  url: string;

  @ApiProperty({
    example: 'com.example.parlor.ios',
    minLength: 1,
    maxLength: 128,
    description: 'The app, as the gateway knows it',
  })
  @IsString()
  @MinLength(1)
  @MaxLength(128)
  appId: string;

  @ApiProperty({
    example: 'f2b1c3d4e5a6978899aabbccddeeff00',
    minLength: 1,
    maxLength: 512,
    description:
      'The device token (FCM/APNs). Registered by another user before: it moves to you, and ' +
      'their pending pushes to it are dropped',
  })
  @IsString()
  @MinLength(1)
  @MaxLength(512)
  pushKey: string;

  @ApiPropertyOptional({ example: "Alice's phone", maxLength: 128, default: '' })
  @IsOptional()
  @IsString()
  @MaxLength(128)
  deviceName?: string;

  @ApiPropertyOptional({
    example: 'en',
    maxLength: 16,
    default: 'en',
    pattern: '^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$',
    description: 'Language tag, passed to the gateway in `devices[].data.lang`',
  })
  @IsOptional()
  @IsString()
  @MaxLength(16)
  @Matches(/^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$/)
  lang?: string;
}

export class PusherDto {
  @ApiProperty({ format: 'uuid' })
  id: string;
  @ApiProperty({ enum: PUSHER_KINDS })
  kind: 'http';
  @ApiProperty({ example: 'https://push.example.com/_parlor/push/v1/notify' })
  url: string;
  @ApiProperty({ example: 'com.example.parlor.ios' })
  appId: string;
  @ApiProperty({ example: 'f2b1c3d4e5a6978899aabbccddeeff00' })
  pushKey: string;
  @ApiProperty({ example: "Alice's phone" })
  deviceName: string;
  @ApiProperty({ example: 'en' })
  lang: string;
  @ApiProperty({ format: 'date-time' })
  createdAt: string;
}

export class PusherIdParam {
  @ApiProperty({ format: 'uuid' })
  @IsId()
  id: string;
}

export class PushSettingsDto {
  @ApiProperty({
    example: true,
    description: 'Pushes carry no message text (room, sender and counts only)',
  })
  @IsBoolean()
  hideContent: boolean;
}
