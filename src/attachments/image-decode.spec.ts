import type { ConfigService } from '@nestjs/config';
import { Readable } from 'node:stream';
import sharp from 'sharp';
import type { AccessPolicy } from '../access/access.policy';
import { AppError } from '../common/errors';
import type { Env } from '../config/env';
import type { MetricsService } from '../metrics/metrics.service';
import type { AttachmentStore } from './attachment.store';
import { AttachmentsService } from './attachments.service';

/**
 * The bounds on decoding uploaded images, observed on the service with real sharp and a storage
 * whose reads answer when the test says: ATTACHMENT_IMAGE_CONCURRENCY decodes at most in flight
 * on an instance, whoever uploads; ATTACHMENT_IMAGE_MAX_PIXELS refused before decoding.
 */
class GatedStorage {
  readonly driver = 'local' as const;
  readonly objects = new Map<string, Buffer>();
  /** Keys whose read has started, in order. */
  readonly reads: string[] = [];
  private readonly gates: (() => void)[] = [];

  read(key: string): Promise<Readable> {
    this.reads.push(key);
    return new Promise((resolve) =>
      this.gates.push(() => resolve(Readable.from([this.objects.get(key)!]))),
    );
  }
  /** Lets the oldest waiting read answer, once there is one (a decode may still be finishing). */
  async releaseOne(): Promise<void> {
    for (let waited = 0; !this.gates.length; waited += 5) {
      if (waited > 10_000) throw new Error('no read began');
      await new Promise((r) => setTimeout(r, 5));
    }
    this.gates.shift()!();
  }
  async write(key: string, body: Readable): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c as Buffer);
    this.objects.set(key, Buffer.concat(chunks));
  }
  head = () => Promise.resolve(null);
  delete = () => Promise.resolve();
}

const png = (width: number, height: number) =>
  sharp({ create: { width, height, channels: 3, background: '#3366cc' } })
    .png()
    .toBuffer();

function service(storage: GatedStorage, settings: Partial<Env>) {
  const all: Partial<Env> = {
    ATTACHMENT_ALLOWED_TYPES: ['image/png'],
    ATTACHMENT_THUMBNAIL_PX: 64,
    ATTACHMENT_IMAGE_MAX_PIXELS: 50_000_000,
    ATTACHMENT_IMAGE_CONCURRENCY: 2,
    ...settings,
  };
  const config = { get: (k: keyof Env) => all[k] } as unknown as ConfigService<Env, true>;
  const s = new AttachmentsService(
    {} as AttachmentStore,
    {} as AccessPolicy,
    storage,
    {} as MetricsService,
    config,
  );
  // The decode step of an upload's completion (private: the rest of the path needs the database).
  return (id: string) =>
    (s as unknown as { image(id: string): Promise<{ width: number; height: number }> }).image(id);
}

/** Lets pending promise callbacks (and sharp's worker threads) run. */
const settle = () => new Promise((r) => setTimeout(r, 50));

describe('image decoding bounds', () => {
  it('decodes at most ATTACHMENT_IMAGE_CONCURRENCY images at once; the rest wait their turn', async () => {
    const storage = new GatedStorage();
    const image = service(storage, { ATTACHMENT_IMAGE_CONCURRENCY: 2 });
    const ids = ['a', 'b', 'c', 'd', 'e'];
    for (const [i, id] of ids.entries()) storage.objects.set(`a/${id}`, await png(10 + i, 10));

    const results = ids.map((id) => image(id));
    await settle();
    expect(storage.reads).toEqual(['a/a', 'a/b']); // two in flight, three queued

    await storage.releaseOne();
    await results[0];
    await settle();
    expect(storage.reads).toEqual(['a/a', 'a/b', 'a/c']); // one ended, one more began

    for (let i = 1; i < ids.length; i++) await storage.releaseOne(); // b, c, d, e
    const sizes = await Promise.all(results);
    expect(sizes.map((s) => s.width)).toEqual([10, 11, 12, 13, 14]);
    expect(storage.objects.has('a/e.thumb')).toBe(true);
  });

  it('refuses an image over ATTACHMENT_IMAGE_MAX_PIXELS without a thumbnail, and frees its slot', async () => {
    const storage = new GatedStorage();
    const image = service(storage, {
      ATTACHMENT_IMAGE_MAX_PIXELS: 100 * 100,
      ATTACHMENT_IMAGE_CONCURRENCY: 1,
    });
    storage.objects.set('a/big', await png(101, 100));
    storage.objects.set('a/ok', await png(100, 100));

    const big = image('big');
    const ok = image('ok');
    await settle();
    expect(storage.reads).toEqual(['a/big']);
    await storage.releaseOne();
    const refused = await big.then(
      () => null,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(AppError);
    expect(JSON.stringify((refused as AppError).details)).toMatch(/pixel limit/i);
    expect(storage.objects.has('a/big.thumb')).toBe(false);

    await settle();
    await storage.releaseOne(); // the slot was freed: the next image decodes
    expect(await ok).toEqual({ width: 100, height: 100 });
    expect(storage.objects.has('a/ok.thumb')).toBe(true);
  });
});
