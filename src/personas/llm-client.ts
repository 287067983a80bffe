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
}

export interface StreamCallbacks {
  /** Any chunk arrived (the model is alive), text or not. */
  onChunk: () => void;
  /** A piece of reply text. */
  onText: (text: string) => void;
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

  constructor(config: ConfigService<Env, true>) {
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
   * ended without one (cut off, or aborted through `signal`: the SDK then ends quietly).
   * Rejects on upstream errors; describe them with `describeUpstreamError`.
   */
  async stream(
    req: CompletionRequest,
    signal: AbortSignal,
    cb: StreamCallbacks,
  ): Promise<'stop' | 'length' | null> {
    if (!this.client) throw new Error('LLM_BASE_URL is not configured');
    const stream = await this.client.chat.completions.create(
      {
        model: req.model,
        messages: req.messages,
        temperature: req.temperature,
        max_tokens: req.maxTokens,
        stream: true,
      },
      { signal },
    );
    let finish: 'stop' | 'length' | null = null;
    for await (const chunk of stream) {
      cb.onChunk();
      const choice = chunk.choices[0];
      if (!choice) continue;
      if (choice.delta?.content) cb.onText(choice.delta.content);
      // content_filter, tool_calls…: the model stopped on its own; for a chat reply that is a stop.
      if (choice.finish_reason) finish = choice.finish_reason === 'length' ? 'length' : 'stop';
    }
    return finish;
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
