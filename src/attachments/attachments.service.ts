import { createHash, randomUUID } from 'node:crypto';
import { basename } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { OnEvent } from '@nestjs/event-emitter';
import busboy from 'busboy';
import type { Request, Response } from 'express';
import { fileTypeFromBuffer } from 'file-type';
import pLimit, { type LimitFunction } from 'p-limit';
import rangeParser from 'range-parser';
import sharp from 'sharp';
import { AccessPolicy } from '../access/access.policy';
import type { AuthUser } from '../auth/auth-user';
import { AppError, ErrorCode } from '../common/errors';
import type { AttachmentDto } from '../common/wire';
import type { Env } from '../config/env';
import { MetricsService } from '../metrics/metrics.service';
import { type AttachmentRow, AttachmentStore, toAttachmentDto } from './attachment.store';
import type { DirectUploadDto, NewDirectUploadDto } from './dto/attachment.dto';
import { type AttachmentStorage, StorageMissing, stagingKey } from './storage';

export const ATTACHMENT_STORAGE = Symbol('ATTACHMENT_STORAGE');

/** Bytes `file-type` needs to recognise every format it knows. */
const SNIFF_BYTES = 4100;
/** Types a browser may show inline: raster images only (never HTML, SVG, XML, PDF…). */
const INLINE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);
/** Types that get width, height and a thumbnail. */
const IMAGE_TYPES = INLINE_TYPES;
const UNKNOWN_TYPE = 'application/octet-stream';
/** Room for the multipart envelope around the file, when comparing Content-Length. */
const MULTIPART_SLACK = 64 * 1024;
const SWEEP_BATCH = 100;

/**
 * Uploads (streamed multipart, and direct to S3 with a presigned URL), downloads, and the
 * cleanup job (docs/architecture.md § Attachments). Access: uploads need 'write' on the room,
 * downloads 'read' (and an unsent upload is its uploader's alone); every refusal of a download
 * is 404.
 */
@Injectable()
export class AttachmentsService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(AttachmentsService.name);
  private readonly maxBytes: number;
  private readonly quota: number;
  private readonly allowed: Set<string>;
  private readonly uploadTimeoutMs: number;
  private readonly unattachedTtlMs: number;
  private readonly sweepMs: number;
  /** Image decodes in flight on this instance (ATTACHMENT_IMAGE_CONCURRENCY). */
  private readonly decoding: LimitFunction;
  private readonly urlTtlS: number;
  private readonly thumbPx: number;
  private readonly maxPixels: number;
  private timer?: NodeJS.Timeout;
  private sweeping?: Promise<number>;
  private again = false;
  private lastUploadScan = 0;
  private scanning?: Promise<void>;

  constructor(
    private readonly store: AttachmentStore,
    private readonly access: AccessPolicy,
    @Inject(ATTACHMENT_STORAGE) private readonly storage: AttachmentStorage,
    private readonly metrics: MetricsService,
    config: ConfigService<Env, true>,
  ) {
    this.maxBytes = config.get('ATTACHMENT_MAX_BYTES', { infer: true });
    this.quota = config.get('ATTACHMENT_USER_QUOTA_BYTES', { infer: true });
    this.allowed = new Set(config.get('ATTACHMENT_ALLOWED_TYPES', { infer: true }));
    this.uploadTimeoutMs = config.get('ATTACHMENT_UPLOAD_TIMEOUT_MS', { infer: true });
    this.unattachedTtlMs = config.get('ATTACHMENT_UNATTACHED_TTL_MS', { infer: true });
    this.sweepMs = config.get('ATTACHMENT_SWEEP_MS', { infer: true });
    this.urlTtlS = config.get('ATTACHMENT_URL_TTL_S', { infer: true });
    this.thumbPx = config.get('ATTACHMENT_THUMBNAIL_PX', { infer: true });
    this.maxPixels = config.get('ATTACHMENT_IMAGE_MAX_PIXELS', { infer: true });
    this.decoding = pLimit(config.get('ATTACHMENT_IMAGE_CONCURRENCY', { infer: true }));
    metrics.storedBytesSource = () => this.store.totalBytes();
  }

  onModuleInit(): void {
    this.timer = setInterval(() => void this.sweep().catch(() => undefined), this.sweepMs);
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.sweeping?.catch(() => undefined);
    await this.scanning;
  }

  /** The storage driver in use ('local' or 's3'). */
  get driver(): 'local' | 's3' {
    return this.storage.driver;
  }

  // --- upload ------------------------------------------------------------------------------

  /**
   * POST /rooms/:id/attachments: one file part (`file`) of a multipart body, streamed to the
   * storage as it arrives. The row is written (pending) before the first byte is stored.
   */
  async upload(user: AuthUser, roomId: string, req: Request): Promise<AttachmentDto> {
    await this.access.room(user, roomId, 'write');
    if (!/^multipart\/form-data\b/i.test(req.headers['content-type'] ?? '')) {
      throw AppError.invalid('Validation failed', {
        file: ['send the file as multipart/form-data, in a part named "file"'],
      });
    }
    const declared = Number(req.headers['content-length']);
    if (declared > this.maxBytes + MULTIPART_SLACK) throw this.tooLarge();
    const room = this.quota - (await this.store.usage(user.id));
    if (room <= 0) throw this.overQuota();
    const limit = Math.min(this.maxBytes, room);
    const bb = busboy({
      headers: req.headers,
      limits: { files: 1, fileSize: limit + 1, fields: 10, fieldSize: 1024, parts: 20 },
    });
    let current: Readable | undefined;
    // A client that goes away mid-upload: the file stream fails, so the upload is discarded.
    req.once('close', () => {
      if (req.complete) return;
      const err = AppError.invalid('Upload aborted');
      current?.destroy(err);
      bb.destroy(err);
    });
    try {
      const file = await new Promise<{ name: string | undefined; stream: Readable }>(
        (resolve, reject) => {
          bb.on('file', (field, stream, info) => {
            if (field !== 'file') {
              stream.resume();
              return;
            }
            current = stream;
            resolve({ name: info.filename, stream });
          });
          bb.on('error', (err) =>
            reject(AppError.invalid('Validation failed', { file: [String(err)] })),
          );
          bb.on('close', () =>
            reject(AppError.invalid('Validation failed', { file: ['no part named "file"'] })),
          );
          req.once('close', () => reject(AppError.invalid('Upload aborted')));
          req.pipe(bb);
        },
      );
      return await this.ingest(user, roomId, file.name, file.stream, limit);
    } catch (err) {
      req.unpipe(bb);
      req.resume(); // drain what the client still sends, so the answer reaches it
      throw err;
    }
  }

  /** Stores one streamed file: sniff its head, then meter, hash and write the rest. */
  private async ingest(
    user: AuthUser,
    roomId: string,
    clientName: string | undefined,
    stream: Readable,
    limit: number,
  ): Promise<AttachmentDto> {
    const id = randomUUID();
    const key = `a/${id}`;
    await this.store.createPending({
      id,
      roomId,
      uploaderId: user.id,
      name: fileName(clientName),
      storageKey: key,
      direct: false,
      size: 0,
      expiresInMs: this.uploadTimeoutMs,
    });
    try {
      const it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      const chunks: Buffer[] = [];
      let held = 0;
      let ended = false;
      while (held < SNIFF_BYTES) {
        const next = await it.next();
        if (next.done) {
          ended = true;
          break;
        }
        chunks.push(next.value);
        held += next.value.length;
      }
      const head = Buffer.concat(chunks);
      if (!head.length) throw AppError.invalid('Validation failed', { file: ['file is empty'] });
      const contentType = await this.sniff(head);
      const hash = createHash('sha256');
      let size = 0;
      const tooLarge = () => (limit < this.maxBytes ? this.overQuota() : this.tooLarge());
      const metered = Readable.from(
        (async function* () {
          const take = (b: Buffer) => {
            size += b.length;
            if (size > limit) throw tooLarge();
            hash.update(b);
            return b;
          };
          yield take(head);
          if (ended) return;
          for (let next = await it.next(); !next.done; next = await it.next()) {
            yield take(next.value);
          }
        })(),
      );
      await this.storage.write(key, metered, contentType);
      const image = IMAGE_TYPES.has(contentType) ? await this.image(id) : null;
      return await this.finish(id, user, roomId, {
        size,
        contentType,
        sha256: hash.digest('hex'),
        width: image?.width ?? null,
        height: image?.height ?? null,
        thumbKey: image ? `${key}.thumb` : null,
      });
    } catch (err) {
      stream.resume();
      await this.discard(id);
      this.metrics.attachmentUploads.inc({ result: 'refused' });
      throw uploadError(err);
    }
  }

  /** The content type from the bytes, refused unless allowed (VALIDATION_FAILED). */
  private async sniff(head: Buffer): Promise<string> {
    const type = (await fileTypeFromBuffer(head))?.mime ?? UNKNOWN_TYPE;
    if (!this.allowed.has(type)) {
      throw AppError.invalid('Validation failed', {
        file: [`files of type ${type} are not allowed`],
      });
    }
    return type;
  }

  /**
   * Width, height and a WebP thumbnail of a stored image (sharp decodes the whole image: it is
   * read into memory, at most ATTACHMENT_MAX_BYTES; at most ATTACHMENT_IMAGE_MAX_PIXELS), at
   * most ATTACHMENT_IMAGE_CONCURRENCY at once on this instance, whoever uploads them.
   */
  private async image(id: string): Promise<{ width: number; height: number }> {
    return this.decoding(() => this.decode(id));
  }

  private async decode(id: string): Promise<{ width: number; height: number }> {
    const bytes = await streamToBuffer(await this.storage.read(`a/${id}`));
    try {
      const img = sharp(bytes, { limitInputPixels: this.maxPixels, failOn: 'error' });
      const meta = await img.metadata();
      const thumb = await img
        .clone()
        .rotate()
        .resize(this.thumbPx, this.thumbPx, { fit: 'inside', withoutEnlargement: true })
        .webp({ quality: 70 })
        .toBuffer();
      await this.storage.write(`a/${id}.thumb`, Readable.from([thumb]), 'image/webp');
      const turned = (meta.orientation ?? 1) >= 5;
      return {
        width: (turned ? meta.height : meta.width) ?? 0,
        height: (turned ? meta.width : meta.height) ?? 0,
      };
    } catch (err) {
      if (err instanceof AppError) throw err;
      throw AppError.invalid('Validation failed', {
        file: [`the image could not be decoded (${(err as Error).message})`],
      });
    }
  }

  /**
   * The upload becomes ready. A room deleted while the file arrived answers NOT_FOUND, as if
   * the upload came a moment later (the row's `room_id` is null, or the cleanup job took the
   * row already: then the policy says why), never a stored file in no room.
   */
  private async finish(
    id: string,
    user: AuthUser,
    roomId: string,
    f: Parameters<AttachmentStore['finish']>[2],
  ): Promise<AttachmentDto> {
    const row = await this.store.finish(id, user.id, f, this.quota, this.unattachedTtlMs);
    if (row === 'quota') throw this.overQuota();
    if (row === 'room') throw AppError.notFound('Room');
    if (row === 'gone') {
      await this.access.room(user, roomId, 'write');
      throw AppError.invalid('Upload took too long (ATTACHMENT_UPLOAD_TIMEOUT_MS)');
    }
    this.metrics.attachmentUploads.inc({ result: 'stored' });
    this.metrics.attachmentUploadBytes.inc(f.size);
    return toAttachmentDto(row);
  }

  /**
   * A refused or failed upload: its objects and row go now (the cleanup job is the backstop),
   * unless a concurrent completion finished it or the cleanup job has it already.
   */
  private async discard(id: string): Promise<void> {
    try {
      const row = await this.store.abandon(id, this.uploadTimeoutMs);
      if (row) {
        await this.storage.delete(objectKeys(row.id, row.direct));
        await this.store.deleteClaimed([id]);
        return;
      }
      // Finished by a concurrent completion: kept. Taken by the cleanup job (or gone): what
      // this upload wrote after the job deleted its objects (a thumbnail, a copy) goes now.
      if ((await this.store.find(id))?.state === 'ready') return;
      await this.storage.delete(objectKeys(id, true));
    } catch (err) {
      this.logger.warn(`Discarding upload ${id} failed, the cleanup job will: ${String(err)}`);
    }
  }

  private tooLarge(): AppError {
    return new AppError(
      ErrorCode.PAYLOAD_TOO_LARGE,
      `Files may be at most ${this.maxBytes} bytes (ATTACHMENT_MAX_BYTES)`,
      { limit: this.maxBytes },
    );
  }

  private overQuota(): AppError {
    return new AppError(
      ErrorCode.PAYLOAD_TOO_LARGE,
      `Upload quota exceeded: ${this.quota} bytes per user (ATTACHMENT_USER_QUOTA_BYTES); delete messages with files to make room`,
      { quota: this.quota },
    );
  }

  // --- direct upload (S3) --------------------------------------------------------------------

  /** POST /rooms/:id/attachments/uploads: a pending row and a presigned PUT URL. */
  async createDirect(
    user: AuthUser,
    roomId: string,
    dto: NewDirectUploadDto,
  ): Promise<DirectUploadDto> {
    await this.access.room(user, roomId, 'write');
    if (!this.storage.presignPut) {
      throw AppError.conflict(
        'Direct uploads need S3 storage (ATTACHMENTS_STORAGE=s3); POST the file to /rooms/:id/attachments',
      );
    }
    if (dto.size > this.maxBytes) throw this.tooLarge();
    const id = randomUUID();
    const created = await this.store.createPending(
      {
        id,
        roomId,
        uploaderId: user.id,
        name: fileName(dto.name),
        storageKey: `a/${id}`,
        direct: true,
        size: dto.size,
        expiresInMs: this.uploadTimeoutMs,
      },
      this.quota,
    );
    if (!created) throw this.overQuota();
    const seconds = Math.max(1, Math.floor(this.uploadTimeoutMs / 1000));
    return {
      id,
      // Not the final key: a URL stays valid after completion, so the client's object is
      // copied into place and checked there, out of the URL's reach.
      uploadUrl: await this.storage.presignPut(stagingKey(id), dto.size, seconds),
      method: 'PUT',
      headers: { 'Content-Length': String(dto.size) },
      expiresAt: new Date(Date.now() + seconds * 1000).toISOString(),
    };
  }

  /**
   * POST /attachments/:id/complete: the object the client PUT (at its staging key) is copied to
   * the attachment's key and checked there as a streamed upload is (size, type from its first
   * bytes, digest, thumbnail), so what the URL writes afterwards changes nothing. Idempotent:
   * one completion claims the upload (409 for another while it runs), later ones answer the
   * finished attachment.
   */
  async completeDirect(user: AuthUser, id: string): Promise<AttachmentDto> {
    const row = await this.store.find(id);
    if (!row || row.uploader_id !== user.id || !row.direct || !row.room_id)
      throw AppError.notFound('Upload');
    if (row.state === 'ready') return toAttachmentDto(row);
    if (row.state !== 'pending' && row.state !== 'processing') throw AppError.notFound('Upload');
    await this.access.room(user, row.room_id, 'write');
    if (!(await this.store.claimCompletion(id, this.uploadTimeoutMs))) {
      const now = await this.store.find(id);
      if (now?.state === 'ready') return toAttachmentDto(now);
      if (now?.state === 'processing')
        throw AppError.conflict('This upload is being completed; try again in a moment');
      throw AppError.notFound('Upload');
    }
    const staged = stagingKey(id);
    const head = await this.storage.head(staged).catch(async (err: unknown) => {
      await this.store.unclaimCompletion(id).catch(() => undefined); // the lease frees it
      throw uploadError(err);
    });
    if (!head) {
      await this.store.unclaimCompletion(id);
      throw AppError.conflict('Nothing was uploaded yet: PUT the file to uploadUrl first');
    }
    try {
      if (head.size > this.maxBytes) throw this.tooLarge();
      await this.storage.copy!(staged, row.storage_key);
      await this.storage.delete([staged]);
      const copied = (await this.storage.head(row.storage_key))?.size ?? 0;
      if (copied !== Number(row.size)) {
        throw AppError.invalid('Validation failed', {
          size: [`the uploaded file has ${copied} bytes, not the ${row.size} declared`],
        });
      }
      if (!copied) throw AppError.invalid('Validation failed', { file: ['file is empty'] });
      const first = await streamToBuffer(
        await this.storage.read(row.storage_key, {
          start: 0,
          end: Math.min(copied, SNIFF_BYTES) - 1,
        }),
      );
      const contentType = await this.sniff(first);
      const hash = createHash('sha256');
      await pipeline(await this.storage.read(row.storage_key), hash);
      const image = IMAGE_TYPES.has(contentType) ? await this.image(id) : null;
      return await this.finish(id, user, row.room_id, {
        size: copied,
        contentType,
        sha256: hash.digest('hex'),
        width: image?.width ?? null,
        height: image?.height ?? null,
        thumbKey: image ? `${row.storage_key}.thumb` : null,
      });
    } catch (err) {
      await this.discard(id);
      this.metrics.attachmentUploads.inc({ result: 'refused' });
      throw uploadError(err);
    }
  }

  // --- download ----------------------------------------------------------------------------

  /**
   * GET /attachments/:id(/thumbnail): after the access check, the bytes (local storage: with
   * ranges) or a redirect to a short-lived presigned URL (S3).
   */
  async download(
    user: AuthUser,
    id: string,
    thumbnail: boolean,
    req: Request,
    res: Response,
  ): Promise<void> {
    const row = await this.visible(user, id);
    const key = thumbnail ? row.thumb_key : row.storage_key;
    if (!key) throw AppError.notFound('Thumbnail');
    const type = thumbnail ? 'image/webp' : row.content_type;
    const disposition = contentDisposition(
      INLINE_TYPES.has(type) ? 'inline' : 'attachment',
      thumbnail ? `${row.name}.webp` : row.name,
    );
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Cache-Control', 'private, no-cache');
    if (this.storage.presignGet) {
      const url = await this.storage.presignGet(
        key,
        { contentType: type, disposition },
        this.urlTtlS,
      );
      res.setHeader('Cache-Control', 'no-store');
      res.redirect(302, url);
      return;
    }
    const head = await this.storage.head(key);
    if (!head) throw AppError.notFound('Attachment');
    res.setHeader('Content-Type', type);
    res.setHeader('Content-Disposition', disposition);
    res.setHeader('Content-Security-Policy', "default-src 'none'; sandbox");
    res.setHeader('Accept-Ranges', 'bytes');
    if (row.sha256 && !thumbnail) res.setHeader('ETag', `"${row.sha256}"`);
    let range: { start: number; end: number } | undefined;
    const asked = req.headers.range;
    if (asked && head.size > 0) {
      const parsed = rangeParser(head.size, asked, { combine: true });
      if (parsed === -1) {
        res.setHeader('Content-Range', `bytes */${head.size}`);
        res.status(416).end();
        return;
      }
      if (parsed !== -2 && parsed.type === 'bytes' && parsed.length === 1) range = parsed[0];
    }
    if (range) {
      res.status(206);
      res.setHeader('Content-Range', `bytes ${range.start}-${range.end}/${head.size}`);
      res.setHeader('Content-Length', String(range.end - range.start + 1));
    } else {
      res.status(200);
      res.setHeader('Content-Length', String(head.size));
    }
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    let body: Readable;
    try {
      body = await this.storage.read(key, range);
    } catch (err) {
      if (err instanceof StorageMissing) throw AppError.notFound('Attachment');
      throw err;
    }
    await pipeline(body, res).catch(() => undefined); // a client that goes away is no error
  }

  /**
   * The row, if `user` may fetch it now: ready, its message not deleted, its room readable by
   * them (AccessPolicy 'read'), and an unsent upload only by its uploader. 404 otherwise.
   */
  private async visible(user: AuthUser, id: string): Promise<AttachmentRow> {
    const row = await this.store.find(id);
    const gone =
      !row ||
      row.state !== 'ready' ||
      !row.room_id ||
      row.message_deleted ||
      (row.expires_at !== null && row.expires_at.getTime() <= Date.now()) ||
      (row.message_id === null && row.uploader_id !== user.id);
    if (gone) throw AppError.notFound('Attachment');
    try {
      await this.access.room(user, row.room_id!, 'read');
    } catch (err) {
      if (
        err instanceof AppError &&
        (err.code === ErrorCode.FORBIDDEN || err.code === ErrorCode.NOT_FOUND)
      )
        throw AppError.notFound('Attachment');
      throw err;
    }
    return row;
  }

  // --- cleanup -----------------------------------------------------------------------------

  /**
   * S3: multipart uploads a crash left unfinished, begun more than twice the upload time ago
   * (no live upload is that old; the margin absorbs clock skew with the bucket), at most once
   * per ATTACHMENT_SWEEP_MS. A failure is logged and tried again at a later sweep.
   */
  private async abortStaleUploads(): Promise<void> {
    if (!this.storage.abortStaleUploads || Date.now() - this.lastUploadScan < this.sweepMs) return;
    this.lastUploadScan = Date.now();
    try {
      const aborted = await this.storage.abortStaleUploads(
        new Date(Date.now() - 2 * this.uploadTimeoutMs),
      );
      if (aborted) this.logger.log(`Aborted ${aborted} unfinished multipart upload(s)`);
    } catch (err) {
      this.logger.warn(`Listing unfinished multipart uploads failed: ${String(err)}`);
    }
  }

  /** A deleted message's files go now rather than at the next tick. */
  @OnEvent('message.deleted')
  onMessageDeleted(e: { message: { attachments?: unknown[] } }): void {
    void e;
    void this.sweep().catch(() => undefined);
  }

  /**
   * The cleanup job: claims due rows (SKIP LOCKED, with a lease: safe with several instances),
   * deletes their objects, then the rows. Returns how many were removed. One sweep at a time
   * per instance; a call while one runs makes it run once more.
   */
  sweep(): Promise<number> {
    if (this.sweeping) {
      this.again = true;
      return this.sweeping;
    }
    this.sweeping = (async () => {
      let removed = 0;
      do {
        this.again = false;
        for (;;) {
          const rows = await this.store.claimDue(SWEEP_BATCH, this.uploadTimeoutMs);
          if (!rows.length) break;
          await this.storage.delete(rows.flatMap((r) => objectKeys(r.id, r.direct)));
          await this.store.deleteClaimed(rows.map((r) => r.id));
          this.metrics.attachmentsDeleted.inc(rows.length);
          removed += rows.length;
          if (rows.length < SWEEP_BATCH) break;
        }
      } while (this.again);
      // Not awaited: the rows' cleanup never waits on a slow bucket listing.
      this.scanning ??= this.abortStaleUploads().finally(() => (this.scanning = undefined));
      return removed;
    })().finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }
}

/** Every object an upload may have: the file, its thumbnail, a direct upload's staging copy. */
function objectKeys(id: string, direct: boolean): string[] {
  const keys = [`a/${id}`, `a/${id}.thumb`];
  return direct ? [...keys, stagingKey(id)] : keys;
}

/** The client's file name, as shown: no directories, no control characters, at most 255. */
export function fileName(name: string | undefined): string {
  // eslint-disable-next-line no-control-regex
  const clean = basename((name ?? '').replace(/\\/g, '/')).replace(/[\u0000-\u001f\u007f]/g, '');
  return clean.trim().slice(0, 255) || 'file';
}

/** RFC 6266: an ASCII fallback and the UTF-8 name. */
function contentDisposition(kind: 'inline' | 'attachment', name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_');
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

async function streamToBuffer(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Anything not already an AppError (a storage failure) is a 503, never a bare 500 text. */
function uploadError(err: unknown): unknown {
  if (err instanceof AppError) return err;
  return new AppError(ErrorCode.UNAVAILABLE, 'Storage unavailable, try again');
}
