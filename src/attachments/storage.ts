import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  NoSuchKey,
  NoSuchUpload,
  NotFound,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { Env } from '../config/env';

/** A byte range, both ends inclusive (as HTTP's `Range: bytes=start-end`). */
export interface ByteRange {
  start: number;
  end: number;
}

/** How a presigned download must be answered (fixed by the signature, not by the client). */
export interface PresignedGet {
  contentType: string;
  disposition: string;
}

/**
 * Where attachment bytes live: one interface, a local directory or an S3-compatible bucket.
 * Keys are chosen by the server (`a/<uuid>`, `a/<uuid>.thumb`, and `u/<uuid>`: where a direct
 * upload's client PUTs, `stagingKey`), never from client input.
 */
export interface AttachmentStorage {
  readonly driver: 'local' | 's3';
  /** S3 only: the origin of presigned URLs (a browser page's CSP must allow it). */
  readonly origin?: string;
  /** Stores the stream under `key`; the object exists only once the whole stream was written. */
  write(key: string, body: Readable, contentType: string): Promise<void>;
  /** The object's bytes (or the range of them); NOT_FOUND as a `StorageMissing` error. */
  read(key: string, range?: ByteRange): Promise<Readable>;
  /** The object's size, or null when there is none. */
  head(key: string): Promise<{ size: number } | null>;
  /** Deletes the objects (and any partial write of them); missing ones are no error. */
  delete(keys: string[]): Promise<void>;
  /**
   * S3 only: aborts the multipart uploads of attachment keys begun before `before` (a crash
   * mid-upload leaves one, whose parts are not objects `delete` can see), and deletes staging
   * objects written before it (a presigned URL still valid after its upload was completed or
   * refused can write one no row knows of). Returns how many.
   */
  abortStaleUploads?(before: Date): Promise<number>;
  /** S3 only: copies an object within the bucket (a direct upload's staging object into place). */
  copy?(from: string, to: string): Promise<void>;
  /** S3 only: a URL the client PUTs the file to, valid `seconds`. */
  presignPut?(key: string, size: number, seconds: number): Promise<string>;
  /** S3 only: a URL answering the object with the given type and disposition, valid `seconds`. */
  presignGet?(key: string, answer: PresignedGet, seconds: number): Promise<string>;
}

/** The object is not there. */
export class StorageMissing extends Error {
  constructor(key: string) {
    super(`No stored object ${key}`);
  }
}

const KEY = /^(a\/[0-9a-f-]{36}(\.thumb)?|u\/[0-9a-f-]{36})$/;

/** Where a direct upload's client PUTs its file; completion copies it to `a/<id>`. */
export function stagingKey(id: string): string {
  return `u/${id}`;
}

function checkKey(key: string): string {
  if (!KEY.test(key)) throw new Error(`Bad storage key ${key}`);
  return key;
}

/**
 * A directory: `key` is a path below it. A write goes to `key.part` and is renamed into place
 * when complete, so a crash leaves at most a `.part` file, which `delete` removes with the key.
 */
export class LocalStorage implements AttachmentStorage {
  readonly driver = 'local';
  private readonly root: string;

  constructor(dir: string) {
    this.root = resolve(dir);
  }

  private path(key: string): string {
    return join(this.root, checkKey(key));
  }

  async write(key: string, body: Readable): Promise<void> {
    const path = this.path(key);
    await mkdir(dirname(path), { recursive: true });
    try {
      await pipeline(body, createWriteStream(`${path}.part`));
      await rename(`${path}.part`, path);
    } catch (err) {
      await rm(`${path}.part`, { force: true });
      throw err;
    }
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    const path = this.path(key);
    if (!(await this.head(key))) throw new StorageMissing(key);
    return createReadStream(path, range ? { start: range.start, end: range.end } : {});
  }

  async head(key: string): Promise<{ size: number } | null> {
    try {
      const s = await stat(this.path(key));
      return s.isFile() ? { size: s.size } : null;
    } catch {
      return null;
    }
  }

  async delete(keys: string[]): Promise<void> {
    for (const key of keys) {
      const path = this.path(key);
      await rm(path, { force: true });
      await rm(`${path}.part`, { force: true });
    }
  }
}

export interface S3Settings {
  endpoint?: string;
  bucket: string;
  region: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  forcePathStyle: boolean;
}

/**
 * An S3-compatible bucket (AWS, MinIO, Ceph, R2…). Streams are uploaded as multipart uploads
 * (parts of 5 MiB held in memory, never the whole file); an upload that fails is aborted, one
 * cut short by a crash is aborted by the cleanup job (`abortStaleUploads`).
 */
export class S3Storage implements AttachmentStorage {
  readonly driver = 's3';
  readonly client: S3Client;
  readonly origin: string;
  private readonly bucket: string;

  constructor(s: S3Settings) {
    this.bucket = s.bucket;
    this.origin = s3Origin(s);
    this.client = new S3Client({
      endpoint: s.endpoint,
      region: s.region,
      forcePathStyle: s.forcePathStyle,
      credentials:
        s.accessKeyId && s.secretAccessKey
          ? { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey }
          : undefined,
    });
  }

  async write(key: string, body: Readable, contentType: string): Promise<void> {
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: checkKey(key), Body: body, ContentType: contentType },
      queueSize: 2,
    });
    await upload.done();
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    try {
      const out = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: checkKey(key),
          Range: range ? `bytes=${range.start}-${range.end}` : undefined,
        }),
      );
      return out.Body as Readable;
    } catch (err) {
      if (err instanceof NoSuchKey || err instanceof NotFound) throw new StorageMissing(key);
      throw err;
    }
  }

  async head(key: string): Promise<{ size: number } | null> {
    try {
      const out = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: checkKey(key) }),
      );
      return { size: out.ContentLength ?? 0 };
    } catch (err) {
      if (err instanceof NotFound || err instanceof NoSuchKey) return null;
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404)
        return null;
      throw err;
    }
  }

  async delete(keys: string[]): Promise<void> {
    if (!keys.length) return;
    await this.client.send(
      new DeleteObjectsCommand({
        Bucket: this.bucket,
        Delete: { Objects: keys.map((k) => ({ Key: checkKey(k) })), Quiet: true },
      }),
    );
  }

  async abortStaleUploads(before: Date): Promise<number> {
    let aborted = 0;
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    do {
      const page = await this.client.send(
        new ListMultipartUploadsCommand({
          Bucket: this.bucket,
          Prefix: 'a/',
          KeyMarker,
          UploadIdMarker,
        }),
      );
      for (const u of page.Uploads ?? []) {
        if (!u.Key || !u.UploadId || !KEY.test(u.Key) || !u.Initiated) continue;
        if (u.Initiated >= before) continue;
        try {
          await this.client.send(
            new AbortMultipartUploadCommand({
              Bucket: this.bucket,
              Key: u.Key,
              UploadId: u.UploadId,
            }),
          );
          aborted++;
        } catch (err) {
          // Another instance's job (or the upload's own completion) got there first.
          if (!(err instanceof NoSuchUpload)) throw err;
        }
      }
      [KeyMarker, UploadIdMarker] = page.IsTruncated
        ? [page.NextKeyMarker, page.NextUploadIdMarker]
        : [undefined, undefined];
    } while (KeyMarker);
    return aborted + (await this.deleteStaleStaging(before));
  }

  private async deleteStaleStaging(before: Date): Promise<number> {
    let deleted = 0;
    let ContinuationToken: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: 'u/', ContinuationToken }),
      );
      const stale = (page.Contents ?? [])
        .filter((o) => o.Key && KEY.test(o.Key) && o.LastModified && o.LastModified < before)
        .map((o) => o.Key!);
      await this.delete(stale);
      deleted += stale.length;
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
    return deleted;
  }

  async copy(from: string, to: string): Promise<void> {
    await this.client.send(
      new CopyObjectCommand({
        Bucket: this.bucket,
        Key: checkKey(to),
        CopySource: `${this.bucket}/${checkKey(from)}`,
      }),
    );
  }

  presignPut(key: string, size: number, seconds: number): Promise<string> {
    return getSignedUrl(
      this.client,
      new PutObjectCommand({ Bucket: this.bucket, Key: checkKey(key), ContentLength: size }),
      { expiresIn: seconds },
    );
  }

  presignGet(key: string, answer: PresignedGet, seconds: number): Promise<string> {
    return getSignedUrl(
      this.client,
      new GetObjectCommand({
        Bucket: this.bucket,
        Key: checkKey(key),
        ResponseContentType: answer.contentType,
        ResponseContentDisposition: answer.disposition,
      }),
      { expiresIn: seconds },
    );
  }
}

/**
 * The origin the SDK's URLs for this bucket have: the endpoint's with path style, the bucket
 * as a subdomain of it otherwise (AWS when no endpoint is set). storage.spec.ts compares
 * it with the SDK's presigned URLs.
 */
export function s3Origin(
  s: Pick<S3Settings, 'endpoint' | 'bucket' | 'region' | 'forcePathStyle'>,
): string {
  const base = new URL(s.endpoint ?? `https://s3.${s.region}.amazonaws.com`);
  if (!s.forcePathStyle) base.hostname = `${s.bucket}.${base.hostname}`;
  return base.origin;
}

/** The storage the configuration names. */
export function createStorage(
  env: Pick<
    Env,
    | 'ATTACHMENTS_STORAGE'
    | 'ATTACHMENTS_DIR'
    | 'PARLOR_DATA_DIR'
    | 'ATTACHMENTS_S3_ENDPOINT'
    | 'ATTACHMENTS_S3_BUCKET'
    | 'ATTACHMENTS_S3_REGION'
    | 'ATTACHMENTS_S3_ACCESS_KEY_ID'
    | 'ATTACHMENTS_S3_SECRET_ACCESS_KEY'
    | 'ATTACHMENTS_S3_FORCE_PATH_STYLE'
  >,
): AttachmentStorage {
  if (env.ATTACHMENTS_STORAGE === 's3') {
    return new S3Storage({
      endpoint: env.ATTACHMENTS_S3_ENDPOINT,
      bucket: env.ATTACHMENTS_S3_BUCKET!,
      region: env.ATTACHMENTS_S3_REGION,
      accessKeyId: env.ATTACHMENTS_S3_ACCESS_KEY_ID,
      secretAccessKey: env.ATTACHMENTS_S3_SECRET_ACCESS_KEY,
      forcePathStyle: env.ATTACHMENTS_S3_FORCE_PATH_STYLE,
    });
  }
  return new LocalStorage(env.ATTACHMENTS_DIR || join(env.PARLOR_DATA_DIR, 'attachments'));
}
