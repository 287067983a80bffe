import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import type { ConfigService } from '@nestjs/config';
import { AppError } from '../common/errors';
import type { Env } from '../config/env';

/**
 * Where Parlor may POST pushes (the SSRF guard, docs/operations.md): the scheme allow-list,
 * the operator's host allow-list, and — for hosts not listed — public addresses only, checked
 * when a pusher is registered and again at every delivery, on the very addresses the request
 * connects to (a DNS answer that changed since registration cannot point it inside).
 */
export interface PushUrlRules {
  /** http: as well as https: (PUSH_ALLOW_HTTP). */
  allowHttp: boolean;
  /** Lower-case host names or addresses (PUSH_ALLOWED_HOSTS); empty = any public host. */
  allowedHosts: string[];
}

/** The rules as configured (PUSH_ALLOW_HTTP, PUSH_ALLOWED_HOSTS). */
export function pushUrlRules(config: ConfigService<Env, true>): PushUrlRules {
  return {
    allowHttp: config.get('PUSH_ALLOW_HTTP', { infer: true }),
    allowedHosts: config.get('PUSH_ALLOWED_HOSTS', { infer: true }).map((h) => h.toLowerCase()),
  };
}

/** Addresses a push must never reach unless the operator lists the host. */
const PRIVATE = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, cloud metadata (169.254.169.254)
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const)
  PRIVATE.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  // (IPv4-mapped ::ffff:0:0/96 and NAT64 64:ff9b::/96 are checked as the IPv4 address they
  // embed, below: a BlockList subnet of them would match every IPv4 address.)
  ['100::', 64], // discard
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique local (cloud metadata fd00:ec2::254)
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
] as const)
  PRIVATE.addSubnet(net, prefix, 'ipv6');

/** The IPv4 address embedded in an IPv4-mapped or NAT64 IPv6 address, if any. */
function embeddedIpv4(address: string): string | undefined {
  const m = /^(?:::ffff:|64:ff9b::)(?:(\d+\.\d+\.\d+\.\d+)|([0-9a-f]{1,4}):([0-9a-f]{1,4}))$/i.exec(
    address,
  );
  if (!m) return undefined;
  if (m[1]) return m[1];
  const hi = parseInt(m[2], 16);
  const lo = parseInt(m[3], 16);
  return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
}

/** A public unicast address (not loopback, private, link-local, metadata, multicast…). */
export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return !PRIVATE.check(address, 'ipv4');
  if (family !== 6) return false;
  const v4 = embeddedIpv4(address);
  if (v4 !== undefined) return isIP(v4) === 4 && !PRIVATE.check(v4, 'ipv4');
  return !PRIVATE.check(address, 'ipv6');
}

/** The URL's host as compared with the allow-list: lower case, IPv6 without brackets. */
export function hostOf(url: URL): string {
  return url.hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1');
}

/** Is this host listed by the operator (then any address it resolves to is accepted)? */
export function isListed(rules: PushUrlRules, host: string): boolean {
  return rules.allowedHosts.includes(host);
}

/** The URL's shape against the rules (no DNS); the refusal's reason, or the parsed URL. */
export function parsePushUrl(raw: string, rules: PushUrlRules): URL | string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'url is not a valid URL';
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && rules.allowHttp))
    return rules.allowHttp ? 'url must be http: or https:' : 'url must be https:';
  if (url.username || url.password) return 'url must not contain credentials';
  const host = hostOf(url);
  if (rules.allowedHosts.length && !isListed(rules, host))
    return `url host ${host} is not in PUSH_ALLOWED_HOSTS`;
  return url;
}

function resolveAll(host: string): Promise<LookupAddress[]> {
  return new Promise((resolve, reject) =>
    dnsLookup(host, { all: true, verbatim: true }, (err, addresses) =>
      err ? reject(err) : resolve(addresses),
    ),
  );
}

/**
 * The addresses a push to `host` may connect to: every one the name resolves to, all public
 * (one private answer refuses the lot: a name that mixes them is not trusted). Listed hosts
 * are not checked. Throws a plain Error naming the refusal.
 */
export async function publicAddresses(host: string): Promise<LookupAddress[]> {
  const literal = isIP(host);
  const addresses = literal ? [{ address: host, family: literal }] : await resolveAll(host);
  const bad = addresses.find((a) => !isPublicAddress(a.address));
  if (bad) throw new Error(`${host} resolves to a non-public address (${bad.address})`);
  if (!addresses.length) throw new Error(`${host} does not resolve`);
  return addresses;
}

/**
 * A pusher URL as registered: shape, allow-list and (unlisted hosts) public addresses only.
 * Throws VALIDATION_FAILED with `details.url`.
 */
export async function validatePushUrl(raw: string, rules: PushUrlRules): Promise<void> {
  const url = parsePushUrl(raw, rules);
  const refuse = (why: string) => AppError.invalid(why, { url: [why] });
  if (typeof url === 'string') throw refuse(url);
  const host = hostOf(url);
  if (isListed(rules, host)) return;
  try {
    await publicAddresses(host);
  } catch (err) {
    throw refuse(`url refused: ${(err as Error).message}`);
  }
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/**
 * A `lookup` for http(s).request that lets the connection reach public addresses only (the
 * delivery-time check: no gap between checking an address and connecting to it).
 */
export function publicOnlyLookup(
  hostname: string,
  options: { all?: boolean },
  callback: LookupCallback,
): void {
  publicAddresses(hostname).then(
    (addresses) =>
      options.all
        ? callback(null, addresses)
        : callback(null, addresses[0].address, addresses[0].family),
    (err: Error) => callback(Object.assign(err, { code: 'EPUSHREFUSED' }), [], 0),
  );
}
