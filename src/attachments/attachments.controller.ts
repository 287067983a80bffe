import { Body, Controller, Get, HttpCode, Param, Post, Req, Res } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiBody,
  ApiConsumes,
  ApiCreatedResponse,
  ApiOkResponse,
  ApiOperation,
  ApiProduces,
  ApiResponse,
  ApiTags,
} from '@nestjs/swagger';
import type { Request, Response } from 'express';
import type { AuthUser } from '../auth/auth-user';
import { CurrentUser } from '../auth/decorators';
import { ApiErrors } from '../common/swagger';
import { NotDbBound, RateLimit } from '../limits/limits.decorators';
import { AttachmentDto } from '../messages/dto/message.dto';
import { RoomIdParam } from '../rooms/dto/room.dto';
import { AttachmentsService } from './attachments.service';
import {
  AttachmentIdParam,
  DirectUploadDto,
  NewDirectUploadDto,
  UploadAttachmentDto,
} from './dto/attachment.dto';

const DOWNLOAD =
  'Members who may read the room (and, before it is sent, only its uploader); anyone else, ' +
  'a member removed from the room and a deleted message get 404. Local storage: the bytes, ' +
  'with Range requests (206, 416), ETag (SHA-256), X-Content-Type-Options: nosniff, and ' +
  'Content-Disposition: attachment for every type but PNG, JPEG, GIF and WebP. S3 storage: a ' +
  '302 to a presigned URL valid ATTACHMENT_URL_TTL_S seconds, with the same type and disposition.';

/**
 * Attachments: uploads to a room, direct uploads to S3, downloads (docs/attachments.md).
 * Transfers are not database-bound (@NotDbBound): a slow client streaming a file must not hold
 * a slot of the fair database budget for the whole transfer; they still count towards
 * USER_MAX_INFLIGHT, which bounds one user's concurrent transfers.
 */
@ApiTags('attachments')
@ApiBearerAuth()
@ApiErrors(401)
@Controller()
export class AttachmentsController {
  constructor(private readonly attachments: AttachmentsService) {}

  @Post('rooms/:id/attachments')
  @RateLimit('upload')
  @NotDbBound()
  @ApiOperation({
    summary: 'Upload a file (members who may write), streamed; then send its id in a message',
    description:
      'multipart/form-data with one part named `file`. The type is sniffed from the bytes and ' +
      'must be in ATTACHMENT_ALLOWED_TYPES; images get width, height and a thumbnail. Unsent ' +
      'uploads expire after ATTACHMENT_UNATTACHED_TTL_MS. Counted in the `upload` bucket.',
  })
  @ApiConsumes('multipart/form-data')
  @ApiBody({ type: UploadAttachmentDto })
  @ApiCreatedResponse({ type: AttachmentDto, description: 'The stored upload' })
  @ApiErrors(
    [400, 'Not multipart, no `file` part, an empty file, a type not allowed, an undecodable image'],
    403,
    404,
    [413, 'Larger than ATTACHMENT_MAX_BYTES, or over ATTACHMENT_USER_QUOTA_BYTES'],
    429,
    [503, 'The storage failed; try again'],
  )
  upload(
    @CurrentUser() user: AuthUser,
    @Param() { id }: RoomIdParam,
    @Req() req: Request,
  ): Promise<AttachmentDto> {
    return this.attachments.upload(user, id, req);
  }

  @Post('rooms/:id/attachments/uploads')
  @RateLimit('upload')
  @ApiOperation({
    summary: 'Start a direct upload to S3 storage (members who may write)',
    description:
      'Answers a presigned URL: PUT the file there, then POST /attachments/:id/complete. ' +
      'Size and quota are checked now and again at completion; type at completion. Only with ' +
      'ATTACHMENTS_STORAGE=s3 (409 otherwise).',
  })
  @ApiCreatedResponse({ type: DirectUploadDto, description: 'Where and how to PUT the file' })
  @ApiErrors(
    400,
    403,
    404,
    [409, 'Storage is local: upload with POST /rooms/:id/attachments'],
    [413, 'Larger than ATTACHMENT_MAX_BYTES, or over ATTACHMENT_USER_QUOTA_BYTES'],
    429,
  )
  createDirect(
    @CurrentUser() user: AuthUser,
    @Param() { id }: RoomIdParam,
    @Body() dto: NewDirectUploadDto,
  ): Promise<DirectUploadDto> {
    return this.attachments.createDirect(user, id, dto);
  }

  @Post('attachments/:id/complete')
  @HttpCode(200)
  @RateLimit('upload')
  @NotDbBound()
  @ApiOperation({
    summary: 'Finish a direct upload (its uploader): the object is checked like an upload',
  })
  @ApiOkResponse({ type: AttachmentDto, description: 'The stored upload (again when repeated)' })
  @ApiErrors(
    [400, 'Size differs from the one declared, an empty file, a type not allowed'],
    [404, 'No direct upload of yours with this id (or it expired)'],
    [409, 'Nothing was PUT yet'],
    [413, 'Larger than ATTACHMENT_MAX_BYTES, or over ATTACHMENT_USER_QUOTA_BYTES'],
    429,
  )
  complete(
    @CurrentUser() user: AuthUser,
    @Param() { id }: AttachmentIdParam,
  ): Promise<AttachmentDto> {
    return this.attachments.completeDirect(user, id);
  }

  @Get('attachments/:id')
  @NotDbBound()
  @ApiOperation({ summary: 'Download an attachment', description: DOWNLOAD })
  @ApiProduces('application/octet-stream')
  @ApiResponse({ status: 200, description: 'The file' })
  @ApiResponse({ status: 206, description: 'The range asked for' })
  @ApiResponse({ status: 302, description: 'S3 storage: to a short-lived presigned URL' })
  @ApiResponse({ status: 416, description: 'The range is outside the file' })
  @ApiErrors(400, 404)
  download(
    @CurrentUser() user: AuthUser,
    @Param() { id }: AttachmentIdParam,
    @Req() req: Request,
    @Res() res: Response,
  ): Promise<void> {
    return this.attachments.download(user, id, false, req, res);
  }

  @Get('attachments/:id/thumbnail')
  @NotDbBound()
  @ApiOperation({ summary: "An image attachment's WebP thumbnail", description: DOWNLOAD })
  @ApiProduces('image/webp')
  @ApiResponse({ status: 200, description: 'The thumbnail' })
  @ApiResponse({ status: 302, description: 'S3 storage: to a short-lived presigned URL' })
  @ApiErrors(400, [404, 'Not visible to you, or not an image'])
  thumbnail(
    @CurrentUser() user: AuthUser,
    @Param() { id }: AttachmentIdParam,
    @Req() req: Request,
    @Res() res: Response,
  ): Promise<void> {
    return this.attachments.download(user, id, true, req, res);
  }
}
