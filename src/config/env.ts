import { isIP } from 'node:net';
import { plainToInstance, Transform } from 'class-transformer';
import {
  IsBoolean,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  IsUrl,
  Max,
  Min,
  MinLength,
  ValidateBy,
  ValidateIf,
  validateSync,
} from 'class-validator';

const DURATION = /^(\d+)(ms|s|m|h|d)?$/;
const UNIT_SECONDS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

/** "900", "15m", "7d" → seconds; anything else stays as-is so validation reports it. */
export function parseDurationSeconds(value: unknown): unknown {
  if (typeof value === 'number') return value;
  if (typeof value !== 'string') return value;
  const m = DURATION.exec(value.trim());
  if (!m) return value;
  return Math.round(Number(m[1]) * UNIT_SECONDS[m[2] ?? 's']);
}

const toBool = ({ value }: { value: unknown }) =>
  typeof value === 'string' ? ['1', 'true', 'yes', 'on'].includes(value.toLowerCase()) : value;
const toInt = ({ value }: { value: unknown }) =>
  typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
const toDuration = ({ value }: { value: unknown }) => parseDurationSeconds(value);
const toList = ({ value }: { value: unknown }) =>
  typeof value === 'string'
    ? value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : value;

const PROXY_NAMES = ['loopback', 'linklocal', 'uniquelocal'];

/** One TRUST_PROXY entry: a named range, an address, or an address/prefix. */
function isProxyEntry(entry: string): boolean {
  if (PROXY_NAMES.includes(entry)) return true;
  const [address, prefix, ...rest] = entry.split('/');
  const family = isIP(address);
  if (!family || rest.length) return false;
  return (
    prefix === undefined ||
    (/^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128))
  );
}

/**
 * TRUST_PROXY as Express's `trust proxy` setting: `false` (trust no proxy: the peer address is
 * the client), a hop count, or a list of named ranges, addresses and CIDR blocks. `true`
 * (trust every peer) is not offered: any client could then choose its own address.
 */
export function trustProxySetting(value: string): false | number | string[] {
  const v = value.trim();
  if (v === 'false') return false;
  if (/^\d+$/.test(v)) return Number(v);
  return v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function IsTrustProxy(): PropertyDecorator {
  return ValidateBy({
    name: 'isTrustProxy',
    validator: {
      validate: (v: unknown) => {
        if (typeof v !== 'string') return false;
        const setting = trustProxySetting(v);
        return (
          setting === false ||
          typeof setting === 'number' ||
          (setting.length > 0 && setting.every(isProxyEntry))
        );
      },
      defaultMessage: () =>
        'TRUST_PROXY must be false, a hop count, or a comma-separated list of loopback, ' +
        'linklocal, uniquelocal, IP addresses and CIDR blocks',
    },
  });
}

/**
 * Every environment variable Parlor reads, with its default. `.env.example` and
 * docs/configuration.md list the same set; boot fails listing every invalid one.
 */
export class Env {
  @IsIn(['development', 'production', 'test'])
  NODE_ENV: 'development' | 'production' | 'test' = 'development';

  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(65535)
  PORT = 3000;

  @IsString()
  HOST = '0.0.0.0';

  /**
   * Peers whose X-Forwarded-For is believed (Express `trust proxy`): the client IP of the auth
   * throttle and the logs. Name the reverse proxy's address, never a range clients sit in.
   */
  @IsTrustProxy()
  TRUST_PROXY = 'loopback';

  @IsIn(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
  LOG_LEVEL = 'info';

  /** Comma-separated list of allowed browser origins for HTTP and Socket.IO; empty = same-origin only. */
  @Transform(toList)
  @IsString({ each: true })
  CORS_ORIGINS: string[] = [];

  // --- database ---
  @IsOptional()
  @IsUrl({ protocols: ['postgres', 'postgresql'], require_tld: false })
  DATABASE_URL?: string;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(200)
  DATABASE_POOL_SIZE = 10;

  @Transform(toDuration)
  @IsInt()
  @Min(1)
  DATABASE_STATEMENT_TIMEOUT = 10;

  @IsString()
  @MinLength(1)
  PARLOR_DATA_DIR = './data';

  @Transform(toBool)
  @IsBoolean()
  MIGRATIONS_RUN = true;

  // --- auth ---
  @IsOptional()
  @IsString()
  @MinLength(32)
  JWT_SECRET?: string;

  @IsString()
  JWT_ISSUER = 'parlor';

  @IsString()
  JWT_AUDIENCE = 'parlor';

  @Transform(toDuration)
  @IsInt()
  @Min(1)
  ACCESS_TOKEN_TTL = 900;

  @Transform(toDuration)
  @IsInt()
  @Min(60)
  REFRESH_TOKEN_TTL = 7 * 86400;

  @Transform(toInt)
  @IsInt()
  @Min(4)
  @Max(15)
  BCRYPT_COST = 12;

  @Transform(toBool)
  @IsBoolean()
  AUTH_COOKIE = false;

  @Transform(toDuration)
  @IsInt()
  @Min(1)
  AUTH_THROTTLE_TTL = 60;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  AUTH_THROTTLE_IP_LIMIT = 20;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  AUTH_THROTTLE_USER_LIMIT = 5;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  AUTH_THROTTLE_ACCOUNT_LIMIT = 100;

  @IsOptional()
  @IsString()
  ADMIN_USERNAME?: string;

  @IsOptional()
  @IsString()
  ADMIN_EMAIL?: string;

  @IsOptional()
  @IsString()
  ADMIN_PASSWORD?: string;

  // --- chat ---
  /** Longest user message, in characters after trimming. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(100000)
  MESSAGE_MAX_LENGTH = 4000;

  /** Most edits one message may have (its edit history's length); the next edit is a 409. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(10000)
  MESSAGE_MAX_EDITS = 50;

  // --- scale-out and operations ---
  /** With it, Socket.IO broadcasts and presence go through Redis (several instances). */
  @IsOptional()
  @IsUrl({ protocols: ['redis', 'rediss'], require_tld: false })
  REDIS_URL?: string;

  /** Each instance refreshes its presence heartbeat in Redis this often. */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  PRESENCE_HEARTBEAT_MS = 5000;

  /** An instance silent this long is dead: its users' presence is cleared by the others. */
  @Transform(toInt)
  @IsInt()
  @Min(500)
  PRESENCE_TTL_MS = 15000;

  @Transform(toBool)
  @IsBoolean()
  METRICS_ENABLED = true;

  /** When set, GET /metrics requires `Authorization: Bearer <METRICS_TOKEN>`. */
  @IsOptional()
  @IsString()
  @MinLength(16)
  METRICS_TOKEN?: string;

  /** SIGTERM: how long in-flight socket commands get to finish before the process exits anyway. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  SHUTDOWN_TIMEOUT_MS = 10000;

  // --- Socket.IO ---

  /** Largest Socket.IO packet; a bigger one disconnects that socket only. */
  @Transform(toInt)
  @IsInt()
  @Min(1024)
  WS_MAX_PAYLOAD_BYTES = 65536;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  WS_MAX_SOCKETS_PER_USER = 10;

  /** Commands one socket may have running at once; more are acked RATE_LIMITED. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  WS_MAX_INFLIGHT_PER_SOCKET = 32;

  // --- per-user limits (REST and socket alike) ---

  /** Requests and commands one user may have running at once, over all sockets and REST. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  USER_MAX_INFLIGHT = 16;

  /**
   * Database-bound requests and commands running at once on this instance; more wait, served
   * round-robin between users. 0: DATABASE_POOL_SIZE - SEND_BATCH_CONCURRENCY (at least 1).
   */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  DB_FAIR_CONCURRENCY = 0;

  /** Window of the per-user write limits below (RATE_LIMIT_*). */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  RATE_LIMIT_WINDOW_MS = 10000;

  /** Messages one user may send per window (socket and REST together; persona mentions too). */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  RATE_LIMIT_SEND = 40;

  /** Edits and deletions per user per window. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  RATE_LIMIT_EDIT = 40;

  /** Reactions added or removed per user per window. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  RATE_LIMIT_REACT = 60;

  /** Room joins, leaves, creations and member changes per user per window. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  RATE_LIMIT_ROOMS = 30;

  /** typing.start / typing.stop per user per window. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  RATE_LIMIT_TYPING = 100;

  /** Read markers (read.mark, PUT /rooms/:id/read) per user per window. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  RATE_LIMIT_READ = 200;

  /** A typing indicator ends by itself after this long without a new typing.start. */
  @Transform(toInt)
  @IsInt()
  @Min(500)
  TYPING_TIMEOUT_MS = 5000;

  /** Repeated typing.start within this interval is not re-broadcast. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  TYPING_THROTTLE_MS = 2000;

  // --- personas (LLM replies) ---
  /**
   * Root of an OpenAI-compatible chat-completions API, e.g. http://127.0.0.1:11434/v1 (Ollama),
   * http://127.0.0.1:8080/v1 (llama.cpp server), https://api.openai.com/v1. Unset: personas can
   * be managed and attached, but a mention gets a system message saying replies are off.
   * (Empty rather than undefined when unset, so ConfigService never falls back to process.env.)
   */
  @ValidateIf((env: Env) => env.LLM_BASE_URL !== '')
  @IsUrl({ protocols: ['http', 'https'], require_tld: false, require_protocol: true })
  LLM_BASE_URL = '';

  /** Bearer token for LLM_BASE_URL; local servers usually need none (a placeholder is sent). */
  @IsString()
  LLM_API_KEY = '';

  /** Model used by personas that do not name their own. */
  @IsString()
  @MinLength(1)
  LLM_MODEL = 'gpt-4o-mini';

  /** Longest wait for the model's first chunk, and between two chunks, before giving up. */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  LLM_TIMEOUT_MS = 60000;

  /** SDK retries of a failed request (429, 5xx, connection). 0: fail fast and tell the room. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(5)
  LLM_MAX_RETRIES = 0;

  /** Hard cap on one whole reply, however steadily it streams. */
  @Transform(toInt)
  @IsInt()
  @Min(1000)
  PERSONA_MAX_REPLY_MS = 300000;

  /** Room history sent as context: at most this many characters of message text… */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  PERSONA_CONTEXT_CHARS = 12000;

  /** …and at most this many messages. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(500)
  PERSONA_CONTEXT_MESSAGES = 40;

  /** Streamed tokens are coalesced into one persona.stream.delta at most this often. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  PERSONA_STREAM_FLUSH_MS = 50;

  /** Persona replies one user may trigger per window (mentions and conversation messages). */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  PERSONA_TRIGGER_RATE_LIMIT = 10;

  @Transform(toInt)
  @IsInt()
  @Min(100)
  PERSONA_TRIGGER_RATE_WINDOW_MS = 60000;

  /** Replies waiting behind the one being generated, per persona per room; more are refused. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  PERSONA_QUEUE_MAX = 5;

  /** Group commit: most user messages one INSERT (and one commit) may carry. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(10000)
  SEND_BATCH_MAX = 256;

  /** Group commit: batches written at the same time (each holds one pool connection). */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(64)
  SEND_BATCH_CONCURRENCY = 2;

  // --- HTTP ---

  @IsString()
  HTTP_BODY_LIMIT = '256kb';
}

export function validateEnv(raw: Record<string, unknown>): Env {
  // An empty variable means "use the default", as in most twelve-factor apps.
  const given = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== ''));
  const env = plainToInstance(Env, given, { exposeDefaultValues: true });
  const errors = validateSync(env, { skipMissingProperties: false, whitelist: false });
  const problems = errors.map(
    (e) =>
      `${e.property}=${JSON.stringify(raw[e.property])}: ${Object.values(e.constraints ?? {}).join('; ')}`,
  );
  if (env.NODE_ENV === 'production' && !env.JWT_SECRET) {
    problems.push('JWT_SECRET: required when NODE_ENV=production (at least 32 characters)');
  }
  if (problems.length) {
    throw new Error(`Invalid environment:\n  - ${problems.join('\n  - ')}`);
  }
  return env;
}
