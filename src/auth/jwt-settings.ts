import { Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Env } from '../config/env';

/** Token rules in one place, used by the HTTP strategy, the socket handshake and signing. */
export interface JwtSettings {
  secret: string;
  issuer: string;
  audience: string;
  accessTtl: number;
  refreshTtl: number;
}
export const JWT_SETTINGS = Symbol('JWT_SETTINGS');

/** HS256 pinned: `alg: none`, RS/HS confusion and any key-carrying header are rejected. */
export const ALGORITHM = 'HS256' as const;

export function jwtSettings(config: ConfigService<Env, true>): JwtSettings {
  return {
    // `||`: an empty JWT_SECRET means unset (env.ts), but ConfigService falls back to the raw ''.
    secret: config.get('JWT_SECRET', { infer: true }) || persistentDevSecret(config),
    issuer: config.get('JWT_ISSUER', { infer: true }),
    audience: config.get('JWT_AUDIENCE', { infer: true }),
    accessTtl: config.get('ACCESS_TOKEN_TTL', { infer: true }),
    refreshTtl: config.get('REFRESH_TOKEN_TTL', { infer: true }),
  };
}

/**
 * Outside production a missing JWT_SECRET is generated once and kept in the data directory,
 * so tokens survive restarts (production refuses to boot without one; see env.ts).
 */
function persistentDevSecret(config: ConfigService<Env, true>): string {
  const dir = resolve(config.get('PARLOR_DATA_DIR', { infer: true }));
  const file = join(dir, 'jwt-secret');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(dir, { recursive: true });
  const secret = randomBytes(48).toString('base64url');
  writeFileSync(file, secret, { mode: 0o600, flag: 'wx' });
  new Logger('Auth').log(`JWT_SECRET not set: generated a signing secret, kept in ${file}`);
  return secret;
}
