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

  /** The access token, renewed first when it expires within 15 s. */
  async freshToken(): Promise<string> {
    const exp = tokenExpiry(this.tokens.accessToken);
    if (exp !== undefined && exp - Date.now() < 15_000) await this.refresh();
    return this.tokens.accessToken;
  }

  /** A REST call under /api/v1 with a fresh access token; one retry after a refresh on 401. */
  async api<T>(method: string, path: string, body?: unknown): Promise<T> {
    try {
      return await request<T>(method, path, body, await this.freshToken());
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 401) throw e;
      await this.refresh();
      return request<T>(method, path, body, this.tokens.accessToken);
    }
  }

  /**
   * A file under /api/v1 as a Blob, with the token (which `<img src>` cannot send). Redirects
   * are followed: on S3 storage the API answers a presigned URL (the bucket's CORS must allow
   * GET from this page's origin).
   */
  async blob(path: string): Promise<Blob> {
    const get = (token: string) =>
      fetch(`/api/v1${path}`, { headers: { Authorization: `Bearer ${token}` } });
    let res = await get(await this.freshToken());
    if (res.status === 401) res = await get(await this.refresh());
    if (!res.ok) throw apiError(res.status, res.statusText, await res.json().catch(() => ({})));
    return res.blob();
  }

  /**
   * POSTs a multipart form under /api/v1 and answers the JSON, reporting the upload's progress
   * (0..1; fetch cannot). Errors as api() throws them; aborting `signal` cancels the transfer.
   */
  async upload<T>(
    path: string,
    form: FormData,
    onProgress: (fraction: number) => void,
    signal: AbortSignal,
  ): Promise<T> {
    let res = await post(path, form, await this.freshToken(), onProgress, signal);
    if (res.status === 401) res = await post(path, form, await this.refresh(), onProgress, signal);
    if (res.status < 200 || res.status >= 300)
      throw apiError(res.status, res.statusText, res.body ?? {});
    return res.body as T;
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
  const data: unknown = await res.json().catch(() => ({}));
  if (!res.ok) throw apiError(res.status, res.statusText, data);
  return data as T;
}

/** One XMLHttpRequest POST (for its upload progress events). */
function post(
  path: string,
  form: FormData,
  token: string,
  onProgress: (fraction: number) => void,
  signal: AbortSignal,
): Promise<{ status: number; statusText: string; body: unknown }> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/api/v1${path}`);
    xhr.setRequestHeader('Authorization', `Bearer ${token}`);
    xhr.responseType = 'json';
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () =>
      resolve({ status: xhr.status, statusText: xhr.statusText, body: xhr.response as unknown });
    xhr.onerror = () => reject(new Error('Upload failed: the connection was lost'));
    xhr.onabort = () => reject(new DOMException('Upload cancelled', 'AbortError'));
    if (signal.aborted) return reject(new DOMException('Upload cancelled', 'AbortError'));
    signal.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(form);
  });
}

/** The API's error body (`{code, message, details}`) as an ApiError. */
function apiError(status: number, statusText: string, body: unknown): ApiError {
  const data = (body ?? {}) as { code?: string; message?: string | string[]; details?: unknown };
  const message = Array.isArray(data.message)
    ? data.message.join(', ')
    : (data.message ?? statusText);
  const fields = fieldErrors(data.details);
  return new ApiError(
    status,
    data.code ?? 'ERROR',
    fields ? `${message}: ${fields}` : message,
    data.details,
  );
}

/** `{ field: [messages] }` (the API's validation details) as "field: m1, m2; other: m3". */
function fieldErrors(details: unknown): string {
  if (!details || typeof details !== 'object' || Array.isArray(details)) return '';
  return Object.entries(details as Record<string, unknown>)
    .filter(([, msgs]) => Array.isArray(msgs)) // not other details, e.g. { limit: 1024 }
    .map(([field, msgs]) => `${field}: ${(msgs as unknown[]).join(', ')}`)
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
