import { createHmac } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import {
  hostOf,
  isListed,
  parsePushUrl,
  publicAddresses,
  publicOnlyLookup,
  type PushUrlRules,
} from './push-url';

/** Most of a gateway's answer read (enough for `{rejected: [...]}`). */
const MAX_ANSWER_BYTES = 64 * 1024;

export interface GatewayAnswer {
  status: number;
  body: string;
}

/** `sha256=<hex HMAC-SHA256 of the raw body>`, the X-Parlor-Signature header. */
export function signature(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/**
 * POSTs a signed push to a gateway. The URL is checked again against the rules (they may
 * have changed since registration), and for hosts not allow-listed the connection may only
 * reach public addresses (resolved by the request's own lookup: no rebinding window).
 * Rejects on refusal, network error, timeout or `signal`.
 */
export async function postPush(
  rawUrl: string,
  body: string,
  secret: string,
  rules: PushUrlRules,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<GatewayAnswer> {
  const url = parsePushUrl(rawUrl, rules);
  if (typeof url === 'string') throw new Error(url);
  const host = hostOf(url);
  const guarded = !isListed(rules, host);
  // An address literal is never looked up: checked here instead.
  if (guarded && isIP(host)) await publicAddresses(host);
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<GatewayAnswer>((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          'Content-Length': Buffer.byteLength(body),
          'User-Agent': 'Parlor-Push/1',
          'X-Parlor-Signature': signature(secret, body),
        },
        // The whole exchange, not just idle time, is bounded.
        signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
        ...(guarded ? { lookup: publicOnlyLookup } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size <= MAX_ANSWER_BYTES) chunks.push(chunk);
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** The push keys a gateway's answer says are gone (`{"rejected": [...]}`), if it says so. */
export function rejectedKeys(body: string): string[] {
  try {
    const parsed = JSON.parse(body) as { rejected?: unknown };
    return Array.isArray(parsed.rejected)
      ? parsed.rejected.filter((k): k is string => typeof k === 'string')
      : [];
  } catch {
    return [];
  }
}
