import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The part of a chat-completions request body the tests look at. */
export interface ChatRequest {
  model: string;
  messages: { role: 'system' | 'user' | 'assistant'; content: string; name?: string }[];
  stream?: boolean;
  temperature?: number;
  max_tokens?: number;
  stop?: string | string[];
  stream_options?: { include_usage?: boolean };
}

/** A `usage` as the fake sends it; `total_tokens` is added (their sum, when both are numbers). */
export interface FakeUsage {
  prompt_tokens?: unknown;
  completion_tokens?: unknown;
}

const withTotal = (u: FakeUsage) => ({
  ...u,
  ...(typeof u.prompt_tokens === 'number' && typeof u.completion_tokens === 'number'
    ? { total_tokens: u.prompt_tokens + u.completion_tokens }
    : {}),
});

/** How the fake answers one request. */
export interface Script {
  /** Reply text, one SSE chunk per element. */
  chunks?: string[];
  /** Pause before each chunk (ms). */
  delayMs?: number;
  finishReason?: 'stop' | 'length';
  /** Answer with this HTTP status and an OpenAI-style error body instead of a stream. */
  status?: number;
  /** Destroy the connection after this many chunks (a stream cut mid-way). */
  cutAfter?: number;
  /** Stop sending after this many chunks but keep the connection open (a stalled model). */
  stallAfter?: number;
  /** End the response cleanly after the chunks, but with no finish_reason and no [DONE]. */
  endEarly?: boolean;
  /** Never answer ('headers': send 200 + SSE headers, then nothing; true: not even headers). */
  hang?: true | 'headers';
  /**
   * The token counts of the final usage chunk, sent when the request asks for it
   * (`stream_options.include_usage`); default: prompt 11, completion one per chunk. false: none.
   * The counts may be anything (a broken or hostile server): negative, huge, fractional, absent.
   */
  usage?: FakeUsage | false;
}

/**
 * An OpenAI-compatible server on 127.0.0.1 for tests: POST /v1/chat/completions with
 * `stream: true` answers in the real protocol (SSE `data: {chunk}` lines, then `data: [DONE]`);
 * without it, one `chat.completion` JSON body (the script's chunks joined).
 * Each request takes the next queued script, or the `respond` default. Request bodies are
 * recorded in arrival order.
 */
export class FakeLlm {
  readonly requests: ChatRequest[] = [];
  /** Streaming responses the client closed before their end (a cancelled request). */
  aborted = 0;
  /** Used when no script is queued; may depend on the request. */
  respond: (req: ChatRequest) => Script = () => ({ chunks: ['Hello', ' there', '.'] });
  private readonly queued: Script[] = [];
  private server!: Server;
  url!: string;

  static async start(): Promise<FakeLlm> {
    const fake = new FakeLlm();
    fake.server = createServer((req, res) => void fake.handle(req, res));
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    const { port } = fake.server.address() as AddressInfo;
    fake.url = `http://127.0.0.1:${port}/v1`;
    return fake;
  }

  /** Scripts for the next requests, in order. */
  enqueue(...scripts: Script[]): void {
    this.queued.push(...scripts);
  }

  /** Waits until `n` requests have arrived in total. */
  async waitForRequests(n: number, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.requests.length < n) {
      if (Date.now() > deadline)
        throw new Error(`expected ${n} LLM requests, got ${this.requests.length}`);
      await sleep(10);
    }
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      res
        .writeHead(404, { 'content-type': 'application/json' })
        .end('{"error":{"message":"not found"}}');
      return;
    }
    let raw = '';
    for await (const part of req) raw += String(part);
    const body = JSON.parse(raw) as ChatRequest;
    this.requests.push(body);
    const script = this.queued.shift() ?? this.respond(body);

    if (script.hang === true) return; // the socket stays open until close()
    if (script.status) {
      res.writeHead(script.status, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          error: { message: `fake error ${script.status}`, type: 'fake', code: null },
        }),
      );
      return;
    }
    if (body.stream !== true) {
      // A plain completion (LlmClient.complete): the chunks joined, in one JSON body.
      if (script.hang === 'headers') return;
      if (script.delayMs) await sleep(script.delayMs);
      const chunks = script.chunks ?? [];
      const usage = script.usage || { prompt_tokens: 11, completion_tokens: chunks.length };
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          id: `chatcmpl-${this.requests.length}`,
          object: 'chat.completion',
          created: Math.floor(Date.now() / 1000),
          model: body.model,
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: chunks.join('') },
              finish_reason: script.finishReason ?? 'stop',
            },
          ],
          usage: withTotal(usage),
        }),
      );
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    res.flushHeaders();
    res.once('close', () => {
      if (!res.writableFinished) this.aborted++;
    });
    if (script.hang === 'headers') return;

    const id = `chatcmpl-${this.requests.length}`;
    const chunk = (delta: object, finish: string | null) =>
      `data: ${JSON.stringify({
        id,
        object: 'chat.completion.chunk',
        created: Math.floor(Date.now() / 1000),
        model: body.model,
        choices: [{ index: 0, delta, finish_reason: finish }],
      })}\n\n`;
    const write = (text: string) => !res.destroyed && res.write(text);

    write(chunk({ role: 'assistant', content: '' }, null));
    const chunks = script.chunks ?? [];
    for (let i = 0; i < chunks.length; i++) {
      if (script.cutAfter !== undefined && i >= script.cutAfter) {
        await sleep(50); // let the chunks so far reach the client, then reset the connection
        res.socket?.destroy();
        return;
      }
      if (script.stallAfter !== undefined && i >= script.stallAfter) return;
      if (script.delayMs) await sleep(script.delayMs);
      if (res.destroyed) return; // the client went away (cancel)
      write(chunk({ content: chunks[i] }, null));
    }
    if (script.endEarly) {
      res.end();
      return;
    }
    write(chunk({}, script.finishReason ?? 'stop'));
    if (body.stream_options?.include_usage && script.usage !== false) {
      const usage = script.usage ?? { prompt_tokens: 11, completion_tokens: chunks.length };
      write(
        `data: ${JSON.stringify({
          id,
          object: 'chat.completion.chunk',
          created: Math.floor(Date.now() / 1000),
          model: body.model,
          choices: [],
          usage: withTotal(usage),
        })}\n\n`,
      );
    }
    write('data: [DONE]\n\n');
    res.end();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
