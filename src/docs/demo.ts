import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { Response } from 'express';

/** Where `npm run build` puts the demo web client (web/ bundled by web/build.mjs). */
export const DEMO_DIR = join(process.cwd(), 'dist', 'web');

/**
 * The demo web client at `/`: static files only, outside the API prefix and its guard. A strict
 * Content-Security-Policy (own scripts only, no inline code) backs up the page's rule of
 * rendering user text with textContent. Images may be `blob:` URLs: attachments are fetched
 * with the bearer token and shown through object URLs (web/attachments.ts). With S3 storage a
 * download is a redirect to the bucket, whose origin `connect-src` then allows.
 */
export function serveDemo(
  app: NestExpressApplication,
  { dir = DEMO_DIR, storageOrigin }: { dir?: string; storageOrigin?: string } = {},
): void {
  if (!existsSync(join(dir, 'index.html'))) return; // not built: `/` is a plain 404
  // With S3 storage a download answers 302 to a presigned URL of the bucket, which fetch follows.
  const connect = ["'self'", 'ws:', 'wss:', ...(storageOrigin ? [storageOrigin] : [])].join(' ');
  app.useStaticAssets(dir, {
    index: 'index.html',
    setHeaders: (res: Response) => {
      res.setHeader(
        'Content-Security-Policy',
        `default-src 'self'; connect-src ${connect}; img-src 'self' data: blob:; ` +
          "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
      );
    },
  });
}
