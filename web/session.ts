/**
 * The signed-in session of the demo page: tokens in localStorage (so a reload keeps you signed
 * in), REST calls with the access token, and refresh-token rotation. Rotation is serialised
 * across tabs with a Web Lock: presenting an already-rotated refresh token would end the session.
 */
import { tokenExpiry } from '../client/index';
import type { UserDto } from '../src/users/dto/user.dto';

const KEY = 'parlor.session';

export interface Tokens {
  accessToken: string;
  refreshToken: string;
  user: UserDto;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export class Session {
  private constructor(private tokens: Tokens) {}

  get user(): UserDto {
    return this.tokens.user;
  }
  get accessToken(): string {
    return this.tokens.accessToken;
  }

  /** The session kept by an earlier page load, if it still works. */
  static async restore(): Promise<Session | null> {
    const stored = read();
    if (!stored) return null;
    const session = new Session(stored);
    try {
      session.tokens.user = await session.api<UserDto>('GET', '/auth/me');
      write(session.tokens);
      return session;
    } catch {
      localStorage.removeItem(KEY);
      return null;
    }
  }

  static async login(username: string, password: string): Promise<Session> {
    return Session.start(await request<Tokens>('POST', '/auth/login', { username, password }));
  }

  static async signup(username: string, email: string, password: string): Promise<Session> {
    return Session.start(
      await request<Tokens>('POST', '/auth/signup', { username, email, password }),
    );
  }

  private static start(tokens: Tokens): Session {
    write(tokens);
    return new Session(tokens);
  }

  /** A REST call under /api/v1 with a fresh access token; one retry after a refresh on 401. */
  async api<T>(method: string, path: string, body?: unknown): Promise<T> {
    const exp = tokenExpiry(this.tokens.accessToken);
    if (exp !== undefined && exp - Date.now() < 15_000) await this.refresh();
    try {
      return await request<T>(method, path, body, this.tokens.accessToken);
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 401) throw e;
      await this.refresh();
      return request<T>(method, path, body, this.tokens.accessToken);
    }
  }

  /** Rotates the refresh token (once for all tabs) and returns the new access token. */
  async refresh(): Promise<string> {
    const used = this.tokens.refreshToken;
    const rotate = async () => {
      const stored = read();
      if (stored && stored.refreshToken !== used) {
        this.tokens = stored; // another tab rotated already
        return;
      }
      const next = await request<Tokens>('POST', '/auth/refresh', { refreshToken: used });
      this.tokens = next;
      write(next);
    };
    if ('locks' in navigator) await navigator.locks.request('parlor.refresh', rotate);
    else await rotate();
    return this.tokens.accessToken;
  }

  async logout(): Promise<void> {
    try {
      await this.api('POST', '/auth/logout');
    } finally {
      localStorage.removeItem(KEY);
    }
  }
}

async function request<T>(
  method: string,
  path: string,
  body?: unknown,
  token?: string,
): Promise<T> {
  const res = await fetch(`/api/v1${path}`, {
    method,
    headers: {
      ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  if (res.status === 204) return undefined as T;
  const data = (await res.json().catch(() => ({}))) as {
    code?: string;
    message?: string | string[];
    details?: unknown;
  };
  if (!res.ok) {
    const message = Array.isArray(data.message)
      ? data.message.join(', ')
      : (data.message ?? res.statusText);
    const fields = fieldErrors(data.details);
    throw new ApiError(
      res.status,
      data.code ?? 'ERROR',
      fields ? `${message}: ${fields}` : message,
      data.details,
    );
  }
  return data as T;
}

/** `{ field: [messages] }` (the API's validation details) as "field: m1, m2; other: m3". */
function fieldErrors(details: unknown): string {
  if (!details || typeof details !== 'object' || Array.isArray(details)) return '';
  return Object.entries(details as Record<string, unknown>)
    .map(([field, msgs]) => `${field}: ${Array.isArray(msgs) ? msgs.join(', ') : String(msgs)}`)
    .join('; ');
}

function read(): Tokens | null {
  try {
    return JSON.parse(localStorage.getItem(KEY) ?? 'null') as Tokens | null;
  } catch {
    return null;
  }
}

function write(tokens: Tokens): void {
  localStorage.setItem(KEY, JSON.stringify(tokens));
}
