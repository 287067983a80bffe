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

  /**
   * A pool connection idle this long (ms) is closed; 0: never. A new connection is a new
   * PostgreSQL backend, whose first statements fill its catalog caches and prepare the send
   * statements again; pg's own default (10 s) closed them between any two bursts. Idle
   * connections send TCP keepalives, so one dropped by the network is found out.
   */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(2147483647)
  DATABASE_POOL_IDLE_MS = 300000;

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

  /** Most distinct emoji on one message; a reaction with a new one past it is a 409. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(1000)
  MESSAGE_MAX_REACTIONS = 50;

  // --- scale-out and operations ---
  /** With it, Socket.IO broadcasts and presence go through Redis (several instances). */
  @IsOptional()
  @IsUrl({ protocols: ['redis', 'rediss'], require_tld: false })
  REDIS_URL?: string;

  /**
   * The Socket.IO adapter over Redis: `sharded` (Redis 7 sharded pub/sub, one channel per room:
   * an instance receives only its rooms' broadcasts) or `classic` (every instance receives every
   * broadcast; any Redis version).
   */
  @IsIn(['sharded', 'classic'])
  REDIS_ADAPTER: 'sharded' | 'classic' = 'sharded';

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

  /**
   * Audit log entries older than this many days are deleted (hourly, by one instance at a
   * time). 0 keeps them forever.
   */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  AUDIT_RETENTION_DAYS = 365;

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

  /** One write per socket per event-loop turn (src/chat/write-coalescing.ts). */
  @Transform(toBool)
  @IsBoolean()
  WS_COALESCE_WRITES = true;

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

  /** Room joins, leaves, creations, member changes and moderation actions per user per window. */
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

  /** Reports of messages one user may file per RATE_LIMIT_REPORT_WINDOW_MS. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  RATE_LIMIT_REPORT = 10;

  /** Window of RATE_LIMIT_REPORT (long: nobody files thousands of reports). */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  RATE_LIMIT_REPORT_WINDOW_MS = 600000;

  /** Moderation and admin actions (suspensions, report resolutions, slow mode, word-filter rules). */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  RATE_LIMIT_MODERATE = 60;

  /**
   * Administration that predates moderation (rooms created, changed or deleted, members
   * removed, users changed, personas administered, a persona's memory reset) per user per
   * window: high, for scripts that set up many rooms, and still a bound.
   */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  RATE_LIMIT_ADMIN = 300;

  /**
   * `auth.refresh` on sockets per user per window (each checks the session in the database): a
   * client renews once per access token, once per open tab.
   */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  RATE_LIMIT_REFRESH = 30;

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

  // --- moderation: slow mode and word filters ---

  /** Longest slow-mode interval a moderator may set (PUT /rooms/:id/slow-mode), in seconds. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(604800)
  SLOW_MODE_MAX_SECONDS = 21600;

  /** Word-filter rules one room may have (moderators manage them). */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(10000)
  WORD_FILTERS_MAX_PER_ROOM = 100;

  /** Global word-filter rules (admins manage them; they apply in every room). */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(10000)
  WORD_FILTERS_MAX_GLOBAL = 200;

  /**
   * Per-room settings (slow mode, compiled word filters, a room's personas and their
   * turn-taking) are kept in memory and dropped at once
   * on a change (on other instances through Redis); this is the safety net: each room's copy is
   * read again after at most this long.
   */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  ROOM_SETTINGS_TTL_MS = 30000;

  /** Rooms whose settings one instance keeps in memory at most (the oldest are dropped first). */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  ROOM_SETTINGS_CACHE_ROOMS = 10000;

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

  /**
   * A streaming reply whose instance stopped refreshing it (it died) for this long is ended by
   * another instance, saved as `interrupted` (within 1.5× this; Redis only).
   */
  @Transform(toInt)
  @IsInt()
  @Min(500)
  PERSONA_STREAM_STALE_MS = 15000;

  /**
   * Ask the model server for token usage at the end of the stream (`stream_options.include_usage`).
   * Off for servers that reject the option; tokens are then estimated (docs/personas.md).
   */
  @Transform(toBool)
  @IsBoolean()
  LLM_STREAM_USAGE = true;

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

  /**
   * Persona memory: history that no longer fits PERSONA_CONTEXT_* is folded by the model into a
   * rolling summary per room and persona, sent ahead of the recent messages (docs/personas.md).
   */
  @Transform(toBool)
  @IsBoolean()
  PERSONA_SUMMARY_ENABLED = true;

  /** Longest summary, in characters (asked of the model, and cut there). */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(100000)
  PERSONA_SUMMARY_MAX_CHARS = 2000;

  /** Most characters of overflowed messages one summarise request folds in. */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(1000000)
  PERSONA_SUMMARY_BATCH_CHARS = 8000;

  /**
   * Daily token budgets of persona replies (prompt + completion, per UTC day), 0: unlimited.
   * Per user who calls personas (all rooms)…
   */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  PERSONA_DAILY_TOKENS_USER = 0;

  /** …per room (all users and personas)… */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  PERSONA_DAILY_TOKENS_ROOM = 0;

  /** …per persona (all rooms; a persona's own `dailyTokenBudget` overrides it)… */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  PERSONA_DAILY_TOKENS_PERSONA = 0;

  /** …and for the whole server. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  PERSONA_DAILY_TOKENS_GLOBAL = 0;

  /**
   * Loop guard: persona turns in a row without a person's message (the turns a person's
   * message called count); a persona's reply calls no further persona past it. Rooms may
   * override it (PUT /rooms/:id/persona-policy).
   */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  PERSONA_MAX_CONSECUTIVE_TURNS = 3;

  /** Loop guard: persona-to-persona replies per room per PERSONA_CHAIN_BUDGET_WINDOW_MS. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  PERSONA_CHAIN_BUDGET = 50;

  @Transform(toInt)
  @IsInt()
  @Min(1000)
  PERSONA_CHAIN_BUDGET_WINDOW_MS = 3600000;

  /** Loop guard: a persona called by another persona's reply must have been silent this long. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  PERSONA_COOLDOWN_MS = 5000;

  /** Group commit: most user messages one INSERT (and one commit) may carry. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(10000)
  SEND_BATCH_MAX = 256;

  /**
   * Group commit: most batches written at the same time (each holds one pool connection). One
   * is written at a time; another starts only when the oldest has run SEND_BATCH_STALL_MS.
   */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(64)
  SEND_BATCH_CONCURRENCY = 2;

  /**
   * Group commit: how long the batch in flight runs before a further one may start beside it
   * (up to SEND_BATCH_CONCURRENCY). Bounds how long one slow batch (a room's lock held by its
   * deletion) holds the instance's other sends. 0: start every batch at once.
   */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(60000)
  SEND_BATCH_STALL_MS = 10;

  /**
   * Search index upkeep: every this many ms, one statement merges the search index's GIN
   * pending list (where inserts put their entries, cheaply) into the index, off the send path.
   * 0: never (on a server, autovacuum merges it now and then; embedded PGlite has no
   * autovacuum. An insert that fills the 4 MB list merges it inline: a stall of that batch).
   */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(3_600_000)
  SEARCH_INDEX_CLEAN_MS = 1000;

  // --- push gateway (phones) ---
  /**
   * HMAC-SHA256 key of the `X-Parlor-Signature` header on every push; the push gateway holds
   * the same key. Unset: push is off (registering a pusher answers 503, nothing is sent).
   */
  @IsOptional()
  @IsString()
  @MinLength(32)
  PUSH_HMAC_SECRET?: string;

  /** Pusher URLs may be http: as well as https: (a gateway on a private network, tests). */
  @Transform(toBool)
  @IsBoolean()
  PUSH_ALLOW_HTTP = false;

  /**
   * Hosts pusher URLs may name (comma-separated host names or addresses, compared exactly,
   * case-insensitively); listed hosts may resolve to private addresses. Empty: any host that
   * resolves to public addresses only (checked at registration and at every delivery).
   */
  @Transform(toList)
  @IsString({ each: true })
  PUSH_ALLOWED_HOSTS: string[] = [];

  /** Pushers (devices) one user may register; more answer 409. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(1000)
  PUSH_MAX_PUSHERS_PER_USER = 10;

  /** Each instance looks for due pushes this often (and at once when it enqueues some). */
  @Transform(toInt)
  @IsInt()
  @Min(10)
  PUSH_POLL_MS = 1000;

  /** A claimed push not delivered within this long (its instance died) is due again. */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  PUSH_LEASE_MS = 60000;

  /** Longest wait for a push gateway's answer. */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  PUSH_TIMEOUT_MS = 10000;

  /** Retry after a failed delivery: base × 2^attempts, capped at PUSH_RETRY_MAX_MS, jittered. */
  @Transform(toInt)
  @IsInt()
  @Min(10)
  PUSH_RETRY_BASE_MS = 2000;

  @Transform(toInt)
  @IsInt()
  @Min(10)
  PUSH_RETRY_MAX_MS = 600000;

  /** A push still undelivered this long after its notification is abandoned (deleted, counted). */
  @Transform(toInt)
  @IsInt()
  @Min(1000)
  PUSH_MAX_AGE_MS = 86400000;

  /** Pusher registrations, removals and push settings changes per user per window. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  RATE_LIMIT_PUSH = 20;
  /** Notifications: most messages one notification statement (one batch) decides for. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(10000)
  NOTIFICATION_BATCH_MAX = 256;

  /** Mentions: most members one message mentions (`@room`/`@here` expanded; explicit names first). */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(100000)
  MENTION_MAX_USERS = 1000;

  /** Mentions: a room's member names are read again at least this often (a safety net). */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  ROOM_MEMBERS_CACHE_TTL_MS = 60000;

  /** Mentions: rooms whose member names are held in memory (the least recently loaded go). */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  ROOM_MEMBERS_CACHE_ROOMS = 1000;

  // --- attachments (docs/attachments.md) ---
  /** Where files are kept: `local` (a directory) or `s3` (an S3-compatible bucket). */
  @IsIn(['local', 's3'])
  ATTACHMENTS_STORAGE: 'local' | 's3' = 'local';

  /** Local storage directory; empty: PARLOR_DATA_DIR/attachments. */
  @IsOptional()
  @IsString()
  ATTACHMENTS_DIR?: string;

  /** S3: the endpoint of an S3-compatible store (empty: AWS's, from the region). */
  @IsOptional()
  @IsUrl({ protocols: ['http', 'https'], require_tld: false })
  ATTACHMENTS_S3_ENDPOINT?: string;

  /** S3: the bucket (required when ATTACHMENTS_STORAGE=s3). */
  @IsOptional()
  @IsString()
  ATTACHMENTS_S3_BUCKET?: string;

  @IsString()
  ATTACHMENTS_S3_REGION = 'us-east-1';

  /** S3: credentials; empty: the SDK's default chain (environment, instance role). */
  @IsOptional()
  @IsString()
  ATTACHMENTS_S3_ACCESS_KEY_ID?: string;

  @IsOptional()
  @IsString()
  ATTACHMENTS_S3_SECRET_ACCESS_KEY?: string;

  /** S3: path-style URLs (`endpoint/bucket/key`), as MinIO and most self-hosted stores need. */
  @Transform(toBool)
  @IsBoolean()
  ATTACHMENTS_S3_FORCE_PATH_STYLE = false;

  /** Largest file (bytes). */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  ATTACHMENT_MAX_BYTES = 26214400;

  /** Most attachments one message carries. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(100)
  ATTACHMENTS_PER_MESSAGE = 10;

  /** Bytes one user may have stored (uploads pending, unsent and sent, until deleted). */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  ATTACHMENT_USER_QUOTA_BYTES = 1073741824;

  /**
   * Content types accepted, as sniffed from the bytes (never the client's claim); a file
   * without a recognised signature (text, HTML, SVG…) is `application/octet-stream`.
   */
  @Transform(toList)
  @IsString({ each: true })
  ATTACHMENT_ALLOWED_TYPES: string[] = [
    'image/png',
    'image/jpeg',
    'image/gif',
    'image/webp',
    'application/pdf',
    'application/zip',
    'audio/mpeg',
    'audio/ogg',
    'video/mp4',
    'video/webm',
    'application/octet-stream',
  ];

  /** An upload (streamed, or direct and not yet confirmed) not finished within this is removed. */
  @Transform(toInt)
  @IsInt()
  @Min(1000)
  ATTACHMENT_UPLOAD_TIMEOUT_MS = 600000;

  /** An upload never sent in a message is removed this long after it finished. */
  @Transform(toInt)
  @IsInt()
  @Min(1000)
  ATTACHMENT_UNATTACHED_TTL_MS = 86400000;

  /** Each instance runs the cleanup job this often. */
  @Transform(toInt)
  @IsInt()
  @Min(10)
  ATTACHMENT_SWEEP_MS = 60000;

  /** S3: lifetime of the presigned download URL a download redirects to (seconds). */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(604800)
  ATTACHMENT_URL_TTL_S = 60;

  /** Image thumbnails fit in a square of this many pixels. */
  @Transform(toInt)
  @IsInt()
  @Min(16)
  @Max(2048)
  ATTACHMENT_THUMBNAIL_PX = 320;

  /** Images larger than this many pixels are refused (decompression bombs). */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  ATTACHMENT_IMAGE_MAX_PIXELS = 50000000;

  /**
   * Images this instance decodes at once (dimensions and thumbnail, on upload); more wait their
   * turn. Each takes a core and up to ATTACHMENT_IMAGE_MAX_PIXELS × 4 bytes of memory.
   */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(64)
  ATTACHMENT_IMAGE_CONCURRENCY = 2;

  /** Uploads (and direct-upload creations) one user may start per RATE_LIMIT_WINDOW_MS. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  RATE_LIMIT_UPLOAD = 20;

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
  if (env.PUSH_LEASE_MS <= env.PUSH_TIMEOUT_MS) {
    problems.push('PUSH_LEASE_MS: must be longer than PUSH_TIMEOUT_MS');
  }
  if (env.ATTACHMENTS_STORAGE === 's3' && !env.ATTACHMENTS_S3_BUCKET) {
    problems.push('ATTACHMENTS_S3_BUCKET: required when ATTACHMENTS_STORAGE=s3');
  }
  if (problems.length) {
    throw new Error(`Invalid environment:\n  - ${problems.join('\n  - ')}`);
  }
  return env;
}
