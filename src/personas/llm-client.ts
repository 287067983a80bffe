import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import OpenAI, {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  APIUserAbortError,
} from 'openai';
import type { Env } from '../config/env';
import type { ChatMessage } from './prompt';

export interface CompletionRequest {
  model: string;
  messages: ChatMessage[];
  temperature: number;
  maxTokens: number;
  /** Sequences where the model stops writing; sent only when there is one. */
  stop?: string[];
}

export interface StreamCallbacks {
  /** Any chunk arrived (the model is alive), text or not. */
  onChunk: () => void;
  /** A piece of reply text. */
  onText: (text: string) => void;
}

/** Tokens of one completion, as the model server counted them (`usage`). */
export interface TokenUsage {
  prompt: number;
  completion: number;
}

/** The most tokens one count may say (a sane bound far above any real request). */
export const MAX_TOKEN_COUNT = 1_000_000_000;

/**
 * A token count from the model server, as Parlor trusts it: an integer from 0 to
 * MAX_TOKEN_COUNT; anything else (negative, fractional, huge, missing, not a number) is null.
 */
export function tokenCount(n: unknown): number | null {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= MAX_TOKEN_COUNT ? n : null;
}

/**
 * The server's `usage`, when both counts are sane; else null, so the documented estimate is
 * used instead (a server's bad count must not lower the sums, break the metrics or the insert).
 */
export function sanitizeUsage(
  u: { prompt_tokens?: unknown; completion_tokens?: unknown } | null | undefined,
): TokenUsage | null {
  if (!u) return null;
  const prompt = tokenCount(u.prompt_tokens);
  const completion = tokenCount(u.completion_tokens);
  return prompt === null || completion === null ? null : { prompt, completion };
}

export interface StreamResult {
  /** The model's finish reason; null when the stream ended without one. */
  finish: 'stop' | 'length' | null;
  /** From the stream's last chunk when the server sent one (LLM_STREAM_USAGE), else null. */
  usage: TokenUsage | null;
}

/** A non-streamed completion (LlmClient.complete). */
export interface CompletionResult extends StreamResult {
  text: string;
}

/**
 * The documented estimate used when the model server sends no `usage`: one token per 4
 * characters, rounded up (OpenAI's rule of thumb for English text).
 */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

/**
 * The one place that speaks to the model server: the official `openai` SDK pointed at
 * LLM_BASE_URL, so OpenAI, Ollama, vLLM, llama.cpp's server and other compatible servers all
 * work. (openai 6.x: 7.x requires Node 22, Parlor supports Node 20.19+.)
 */
@Injectable()
export class LlmClient {
  private readonly client: OpenAI | null;
  readonly defaultModel: string;
  private readonly askUsage: boolean;

  constructor(config: ConfigService<Env, true>) {
    this.askUsage = config.get('LLM_STREAM_USAGE', { infer: true });
    const baseURL = config.get('LLM_BASE_URL', { infer: true });
    this.defaultModel = config.get('LLM_MODEL', { infer: true });
    this.client = baseURL
      ? new OpenAI({
          baseURL,
          // The SDK insists on a key; local servers ignore whatever is sent.
          apiKey: config.get('LLM_API_KEY', { infer: true }) || 'not-needed',
          maxRetries: config.get('LLM_MAX_RETRIES', { infer: true }),
          // Our own timers (idle and total) stop a reply first; this is the SDK's backstop.
          timeout: config.get('PERSONA_MAX_REPLY_MS', { infer: true }) + 5000,
        })
      : null;
  }

  /** False when LLM_BASE_URL is unset: personas exist but cannot reply. */
  get configured(): boolean {
    return this.client !== null;
  }

  /**
   * Streams one completion. Resolves with the model's finish reason, or null when the stream
   * ended without one (cut off, or aborted through `signal`: the SDK then ends quietly), and the
   * token usage when the server sent it. Rejects on upstream errors; describe them with
   * `describeUpstreamError`.
   */
  async stream(
    req: CompletionRequest,
    signal: AbortSignal,
    cb: StreamCallbacks,
  ): Promise<StreamResult> {
    if (!this.client) throw new Error('LLM_BASE_URL is not configured');
    const stream = await this.client.chat.completions.create(
      {
        model: req.model,
        messages: req.messages,
        temperature: req.temperature,
        max_tokens: req.maxTokens,
        ...(req.stop?.length ? { stop: req.stop } : {}),
        stream: true,
        ...(this.askUsage ? { stream_options: { include_usage: true } } : {}),
      },
      { signal },
    );
    let finish: 'stop' | 'length' | null = null;
    let usage: TokenUsage | null = null;
    for await (const chunk of stream) {
      cb.onChunk();
      // With include_usage, the last chunk carries the usage and no choices.
      if (chunk.usage) usage = sanitizeUsage(chunk.usage);
      const choice = chunk.choices[0];
      if (!choice) continue;
      if (choice.delta?.content) cb.onText(choice.delta.content);
      // content_filter, tool_calls…: the model stopped on its own; for a chat reply that is a stop.
      if (choice.finish_reason) finish = choice.finish_reason === 'length' ? 'length' : 'stop';
    }
    return { finish, usage };
  }

  /**
   * One completion without streaming, for short internal answers (the `director` turn policy
   * asks which persona speaks next): the text ('' when the model sent none), the finish reason
   * and the server's usage (sanitized, null when absent or not sane). Rejects on upstream
   * errors and when `signal` aborts.
   */
  async complete(req: CompletionRequest, signal: AbortSignal): Promise<CompletionResult> {
    if (!this.client) throw new Error('LLM_BASE_URL is not configured');
    const res = await this.client.chat.completions.create(
      {
        model: req.model,
        messages: req.messages,
        temperature: req.temperature,
        max_tokens: req.maxTokens,
        stream: false,
      },
      { signal },
    );
    const choice = res.choices[0];
    const reason = choice?.finish_reason;
    return {
      text: choice?.message?.content ?? '',
      finish: reason ? (reason === 'length' ? 'length' : 'stop') : null,
      usage: sanitizeUsage(res.usage),
    };
  }
}

export function isAbort(err: unknown): boolean {
  return err instanceof APIUserAbortError || (err instanceof Error && err.name === 'AbortError');
}

export function isUpstreamTimeout(err: unknown): boolean {
  return err instanceof APIConnectionTimeoutError;
}

/**
 * A reason people in the room can act on, without internals (no URLs, no keys, no stack).
 * The full error goes to the server log.
 */
export function describeUpstreamError(err: unknown, model: string): string {
  if (err instanceof APIConnectionTimeoutError) return 'the model server did not answer in time';
  if (err instanceof APIConnectionError) {
    const code = connectionCode(err);
    return `the model server could not be reached${code ? ` (${code})` : ''}`;
  }
  if (err instanceof APIError) {
    switch (err.status) {
      case undefined:
        return 'the model server reported an error in the middle of the reply';
      case 401:
        return 'the model server rejected the API key (401)';
      case 403:
        return 'the model server refused access (403)';
      case 404:
        return `the model "${model}" is not available on the model server (404)`;
      case 429:
        return 'the model server is rate-limiting requests (429); try again shortly';
      default:
        return err.status >= 500
          ? `the model server failed (${err.status})`
          : `the model server refused the request (${err.status})`;
    }
  }
  return 'the reply stream broke off';
}

/** ECONNREFUSED, ENOTFOUND…: buried in `cause` chains by fetch. */
function connectionCode(err: unknown): string | null {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return null;
}
