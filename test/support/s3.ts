import { mkdtempSync, rmSync } from 'node:fs';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { type ClientRequest, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import S3rver from 's3rver';

/**
 * A real S3-compatible server (s3rver) on a random port, with a bucket: the S3 driver is
 * tested against it through the real SDK, never a mock. s3rver stores unfinished multipart
 * uploads but lacks two operations on them, added here over its own store (see
 * `multipartExtras`): ListMultipartUploads and AbortMultipartUpload.
 */
export interface LocalS3 {
  endpoint: string;
  bucket: string;
  client: S3Client;
  /** The app's settings for this server. */
  env: Record<string, string>;
  keys: () => Promise<string[]>;
  /** Keys of the unfinished multipart uploads. */
  uploads: () => Promise<string[]>;
  exists: (key: string) => Promise<boolean>;
  close: () => Promise<void>;
}

export async function startS3(bucket = 'parlor-test'): Promise<LocalS3> {
  const dir = mkdtempSync(join(tmpdir(), 'parlor-s3-'));
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir });
  (server as unknown as { middleware: unknown[] }).middleware.unshift(
    multipartExtras((b) =>
      (
        server as unknown as {
          store: { getResourcePath(b: string, k: undefined, r: string): string };
        }
      ).store.getResourcePath(b, undefined, 'uploads'),
    ),
  );
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  return {
    endpoint,
    bucket,
    client,
    env: {
      ATTACHMENTS_STORAGE: 's3',
      ATTACHMENTS_S3_ENDPOINT: endpoint,
      ATTACHMENTS_S3_BUCKET: bucket,
      ATTACHMENTS_S3_REGION: 'us-east-1',
      ATTACHMENTS_S3_ACCESS_KEY_ID: 'S3RVER',
      ATTACHMENTS_S3_SECRET_ACCESS_KEY: 'S3RVER',
      ATTACHMENTS_S3_FORCE_PATH_STYLE: 'true',
    },
    keys: async () => {
      const out = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
      return (out.Contents ?? []).map((o) => o.Key!).sort();
    },
    uploads: async () => {
      const out = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
      return (out.Uploads ?? []).map((u) => u.Key!).sort();
    },
    exists: async (key) => {
      try {
        await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        return true;
      } catch {
        return false;
      }
    },
    close: async () => {
      client.destroy();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts a multipart upload of one part named `file` to `url` and leaves it open: the headers
 * announce `announced` bytes, the caller writes (some of) them and may cut the connection.
 */
export function openUpload(
  url: string,
  auth: Record<string, string>,
  announced: number,
  name = 'cut.bin',
): ClientRequest {
  const u = new URL(url);
  const boundary = 'parlorTestBoundary';
  const req = httpRequest({
    host: u.hostname,
    port: u.port,
    path: u.pathname,
    method: 'POST',
    headers: {
      ...auth,
      'content-type': `multipart/form-data; boundary=${boundary}`,
      'content-length': String(announced),
    },
  });
  req.on('error', () => undefined);
  req.write(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\n` +
      `Content-Type: application/octet-stream\r\n\r\n`,
  );
  return req;
}

interface KoaContext {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  status: number;
  type: string;
  body: unknown;
}

/**
 * ListMultipartUploads (`GET /<bucket>?uploads`, path style) and AbortMultipartUpload
 * (`DELETE /<bucket>/<key>?uploadId=`) over s3rver's own record of unfinished uploads: one
 * directory per upload id holding a `key` file and the parts. `Initiated` is the directory's
 * birth time.
 */
function multipartExtras(uploadsDir: (bucket: string) => string) {
  const xml = (body: string) => `<?xml version="1.0" encoding="UTF-8"?>\n${body}`;
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return async (ctx: KoaContext, next: () => Promise<void>): Promise<void> => {
    const [, bucket, ...rest] = ctx.path.split('/');
    const key = decodeURIComponent(rest.join('/'));
    if (ctx.method === 'GET' && bucket && !key && 'uploads' in ctx.query) {
      const dir = uploadsDir(bucket);
      const prefix = typeof ctx.query.prefix === 'string' ? ctx.query.prefix : '';
      const entries = await readdir(dir).catch(() => [] as string[]);
      const uploads: string[] = [];
      for (const id of entries) {
        const k = await readFile(`${dir}/${id}/key`, 'utf8').catch(() => null);
        if (k === null || !k.startsWith(prefix)) continue;
        const { birthtime } = await stat(`${dir}/${id}`);
        uploads.push(
          `<Upload><Key>${esc(k)}</Key><UploadId>${id}</UploadId>` +
            `<Initiated>${birthtime.toISOString()}</Initiated></Upload>`,
        );
      }
      ctx.type = 'application/xml';
      ctx.body = xml(
        `<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
          `<Bucket>${esc(bucket)}</Bucket><Prefix>${esc(prefix)}</Prefix>` +
          `<MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>${uploads.join('')}` +
          `</ListMultipartUploadsResult>`,
      );
      return;
    }
    const uploadId = ctx.query.uploadId;
    if (ctx.method === 'DELETE' && bucket && key && typeof uploadId === 'string') {
      const dir = `${uploadsDir(bucket)}/${uploadId.replace(/[^0-9a-f]/g, '')}`;
      const stored = await readFile(`${dir}/key`, 'utf8').catch(() => null);
      if (stored !== key) {
        ctx.status = 404;
        ctx.type = 'application/xml';
        ctx.body = xml(
          '<Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message></Error>',
        );
        return;
      }
      await rm(dir, { recursive: true, force: true });
      ctx.status = 204;
      return;
    }
    await next();
  };
}
