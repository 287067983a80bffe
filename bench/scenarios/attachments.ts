/**
 * attachments: upload and download throughput of one file (10 MB by default) through Parlor,
 * against the raw speed of the same storage on the same machine: the local disk (write a file,
 * read it back) and an S3-compatible server (s3rver, started here; the SDK's streamed upload
 * and a GET). Alternating raw / Parlor rounds; medians in MB/s.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { api, loginAdmin } from '../lib/api';
import { num, type Options, size } from '../lib/options';
import { saveResult } from '../lib/report';
import { onCleanup } from '../lib/run';
import { parlor, prepare } from '../lib/setup';
import { fmt, log, table } from '../lib/util';
import { startS3 } from '../../test/support/s3';

const MB = 1e6;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await work();
  return performance.now() - t0;
}

async function drain(body: ReadableStream<Uint8Array> | Readable | null | undefined) {
  if (!body) return 0;
  let n = 0;
  for await (const c of body as AsyncIterable<Uint8Array>) n += c.length;
  return n;
}

interface Side {
  upload: number[];
  download: number[];
}

export async function attachments(o: Options): Promise<void> {
  const bytes = num(o.raw, 'mb', size(o, 10, 10, 1)) * MB;
  const rounds = num(o.raw, 'rounds', size(o, 7, 3, 1));
  const file = randomBytes(bytes);
  const scratch = mkdtempSync(join(tmpdir(), 'parlor-bench-att-'));
  onCleanup('remove scratch', () => rmSync(scratch, { recursive: true, force: true }));

  // The S3-compatible server, for the raw measurement and Parlor's S3 driver alike.
  const s3 = await startS3('bench');
  onCleanup('stop s3rver', () => s3.close());
  const { client, bucket } = s3;

  const prep = await prepare(o);
  const limits = {
    ATTACHMENT_MAX_BYTES: String(bytes * 2),
    RATE_LIMIT_UPLOAD: '100000',
    ATTACHMENT_USER_QUOTA_BYTES: String(bytes * (rounds + 2) * 4),
  };
  const local = await parlor(prep, 'parlor-local', {
    extraEnv: { ...limits, ATTACHMENTS_DIR: join(scratch, 'local') },
  });
  const onS3 = await parlor(prep, 'parlor-s3', {
    extraEnv: { ...limits, ...s3.env },
  });

  async function viaParlor(base: string, side: Side) {
    const token = await loginAdmin(base);
    const room = await api<{ id: string }>(
      base,
      'POST',
      '/api/v1/rooms',
      { name: `bench-att-${randomBytes(3).toString('hex')}` },
      token,
    );
    const form = new FormData();
    form.append('file', new Blob([file]), 'bench.bin');
    let id = '';
    side.upload.push(
      await timed(async () => {
        const res = await fetch(`${base}/api/v1/rooms/${room.body.id}/attachments`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}` },
          body: form,
        });
        if (res.status !== 201) throw new Error(`upload: ${res.status} ${await res.text()}`);
        id = ((await res.json()) as { id: string }).id;
      }),
    );
    side.download.push(
      await timed(async () => {
        // S3: the 302 to the presigned URL is followed, as a browser does.
        const res = await fetch(`${base}/api/v1/attachments/${id}`, {
          headers: { authorization: `Bearer ${token}` },
        });
        if ((await drain(res.body)) !== bytes) throw new Error(`download: ${res.status}`);
      }),
    );
  }

  async function rawDisk(side: Side, i: number) {
    const path = join(scratch, `raw-${i}`);
    side.upload.push(await timed(() => pipeline(Readable.from([file]), createWriteStream(path))));
    side.download.push(await timed(() => drain(createReadStream(path))));
  }

  async function rawS3(side: Side, i: number) {
    const Key = `raw-${i}`;
    side.upload.push(
      await timed(() =>
        new Upload({ client, params: { Bucket: bucket, Key, Body: Readable.from([file]) } }).done(),
      ),
    );
    side.download.push(
      await timed(async () => {
        const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key }));
        await drain(out.Body as Readable);
      }),
    );
  }

  const sides = {
    'raw disk': { upload: [], download: [] } as Side,
    'Parlor, local': { upload: [], download: [] } as Side,
    'raw S3 (s3rver)': { upload: [], download: [] } as Side,
    'Parlor, S3': { upload: [], download: [] } as Side,
  };
  // Warm-up (connections, plans, page cache of the code paths), not counted.
  await viaParlor(local.url, { upload: [], download: [] });
  await viaParlor(onS3.url, { upload: [], download: [] });
  for (let i = 0; i < rounds; i++) {
    log(`  round ${i + 1}/${rounds}`);
    await rawDisk(sides['raw disk'], i);
    await viaParlor(local.url, sides['Parlor, local']);
    await rawS3(sides['raw S3 (s3rver)'], i);
    await viaParlor(onS3.url, sides['Parlor, S3']);
  }
  const mbps = (ms: number) => bytes / MB / (ms / 1000);
  const results = Object.fromEntries(
    Object.entries(sides).map(([name, s]) => [
      name,
      { uploadMBps: mbps(median(s.upload)), downloadMBps: mbps(median(s.download)) },
    ]),
  );
  const r = results as Record<string, { uploadMBps: number; downloadMBps: number }>;
  log(`\n${bytes / MB} MB file, median of ${rounds} rounds (MB/s):\n`);
  log(
    table(
      ['', 'upload', 'download', 'upload vs raw', 'download vs raw'],
      [
        ['raw disk', fmt(r['raw disk'].uploadMBps), fmt(r['raw disk'].downloadMBps), '', ''],
        [
          'Parlor, local',
          fmt(r['Parlor, local'].uploadMBps),
          fmt(r['Parlor, local'].downloadMBps),
          fmt(r['Parlor, local'].uploadMBps / r['raw disk'].uploadMBps, 2),
          fmt(r['Parlor, local'].downloadMBps / r['raw disk'].downloadMBps, 2),
        ],
        [
          'raw S3 (s3rver)',
          fmt(r['raw S3 (s3rver)'].uploadMBps),
          fmt(r['raw S3 (s3rver)'].downloadMBps),
          '',
          '',
        ],
        [
          'Parlor, S3',
          fmt(r['Parlor, S3'].uploadMBps),
          fmt(r['Parlor, S3'].downloadMBps),
          fmt(r['Parlor, S3'].uploadMBps / r['raw S3 (s3rver)'].uploadMBps, 2),
          fmt(r['Parlor, S3'].downloadMBps / r['raw S3 (s3rver)'].downloadMBps, 2),
        ],
      ],
    ),
  );
  saveResult('attachments', { bytes, rounds, server: prep.build.source, results, sides });
}
