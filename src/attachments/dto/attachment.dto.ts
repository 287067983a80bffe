import { ApiProperty } from '@nestjs/swagger';
import { IsInt, IsString, Max, MaxLength, Min, MinLength } from 'class-validator';
import { Type } from 'class-transformer';
import { IsId } from '../../common/validation';

export class AttachmentIdParam {
  @ApiProperty({ format: 'uuid' })
  @IsId()
  id: string;
}

/** The multipart body of POST /rooms/:id/attachments (documentation only: busboy reads it). */
export class UploadAttachmentDto {
  @ApiProperty({
    type: 'string',
    format: 'binary',
    description: 'The file (one part named "file"); at most ATTACHMENT_MAX_BYTES',
  })
  file: unknown;
}

/** POST /rooms/:id/attachments/uploads: a direct upload to S3 about to start. */
export class NewDirectUploadDto {
  @ApiProperty({ example: 'holiday.png', description: 'The file name shown to others' })
  @IsString()
  @MinLength(1)
  @MaxLength(255)
  name: string;

  @ApiProperty({
    example: 10485760,
    description:
      'Exact size in bytes (the PUT must send exactly this many); at most ATTACHMENT_MAX_BYTES',
  })
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(Number.MAX_SAFE_INTEGER)
  size: number;
}

export class DirectUploadDto {
  @ApiProperty({ format: 'uuid', description: 'The attachment id (confirm it, then send it)' })
  id: string;
  @ApiProperty({ description: 'Presigned URL: PUT the file here, with the headers below' })
  uploadUrl: string;
  @ApiProperty({ enum: ['PUT'] })
  method: 'PUT';
  @ApiProperty({ example: { 'Content-Length': '10485760' } })
  headers: Record<string, string>;
  @ApiProperty({
    example: '2026-11-27T16:10:00.000Z',
    description: 'The URL and the upload expire then',
  })
  expiresAt: string;
}
