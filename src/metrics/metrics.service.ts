import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { DataSource } from 'typeorm';

interface PgPool {
  totalCount: number;
  idleCount: number;
  waitingCount: number;
}

/**
 * Every Prometheus series Parlor exposes, on a registry of this app's own (several apps in one
 * test process must not share one). Parlor's own series are named `parlor_*`; prom-client's
 * default Node.js and process metrics keep their standard names (`process_cpu_seconds_total`,
 * `nodejs_eventloop_lag_seconds`, ...), so stock Node.js dashboards work unchanged.
 * deploy/grafana/parlor-dashboard.json charts them.
 */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();

  readonly socketsConnected = new Gauge({
    name: 'parlor_sockets_connected',
    help: 'Socket.IO connections on this instance',
    registers: [this.registry],
  });
  readonly messagesPersisted = new Counter({
    name: 'parlor_messages_persisted_total',
    help: 'Messages written to the database',
    labelNames: ['role'] as const,
    registers: [this.registry],
  });
  readonly acks = new Counter({
    name: 'parlor_ws_acks_total',
    help: 'Socket command acknowledgements by command and result code (ok or an error code)',
    labelNames: ['command', 'result'] as const,
    registers: [this.registry],
  });
  readonly emits = new Counter({
    name: 'parlor_ws_emits_total',
    help: 'Server events broadcast (one per room emit, not per receiving socket)',
    labelNames: ['event'] as const,
    registers: [this.registry],
  });
  readonly adapterReceived = new Counter({
    name: 'parlor_adapter_messages_received_total',
    help:
      'Messages this instance received from Redis through the Socket.IO adapter, by channel: ' +
      'room (one room, user or session channel, subscribed while a socket here is in it), ' +
      'server (read by every instance: broadcasts to several rooms or to all, joins, leaves, ' +
      'disconnects, requests; every broadcast with REDIS_ADAPTER=classic), response (answers ' +
      "to this instance's requests)",
    labelNames: ['channel'] as const,
    registers: [this.registry],
  });
  readonly sendToAck = new Histogram({
    name: 'parlor_send_ack_seconds',
    help: 'message.send: from command received to ack sent (includes the commit)',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly sendBatchRows = new Histogram({
    name: 'parlor_send_batch_rows',
    help:
      "Members' messages per send statement (group commit; a batch that failed is retried " +
      'one row per statement, each counted; sends with attachments are one-row statements): ' +
      'one batch in flight, so batches grow with load; sum / count is the mean batch',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: 'parlor_http_request_duration_seconds',
    help: 'HTTP request latency by route',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly personaGenerations = new Counter({
    name: 'parlor_persona_generations_total',
    help: 'Persona replies by persona (handle) and outcome (the finish reason)',
    labelNames: ['persona', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly personaLatency = new Histogram({
    name: 'parlor_persona_generation_seconds',
    help: 'Persona reply total duration, stream start to end, by persona and outcome',
    labelNames: ['persona', 'outcome'] as const,
    buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  readonly personaFirstToken = new Histogram({
    name: 'parlor_persona_first_token_seconds',
    help: 'Persona reply time to first token, stream start to the first text, by persona and outcome',
    labelNames: ['persona', 'outcome'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly personaTokens = new Counter({
    name: 'parlor_persona_tokens_total',
    help:
      'Persona reply tokens by persona, outcome, kind (prompt, completion) and source (usage: ' +
      "the model server's count; estimate: 1 token per 4 characters)",
    labelNames: ['persona', 'outcome', 'kind', 'source'] as const,
    registers: [this.registry],
  });
  readonly personaSummaries = new Counter({
    name: 'parlor_persona_summaries_total',
    help:
      'Persona memory summarise requests by persona (handle) and outcome (saved, superseded: ' +
      'another instance or a reset came first, failed)',
    labelNames: ['persona', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly pushesEnqueued = new Counter({
    name: 'parlor_push_enqueued_total',
    help: 'Pushes written to the outbox (one per notification and device)',
    registers: [this.registry],
  });
  readonly pushDeliveries = new Counter({
    name: 'parlor_push_deliveries_total',
    help:
      'Push outbox outcomes: delivered (2xx), failed (an attempt to retry), abandoned (too old), ' +
      'rejected (the gateway said the push key is gone: pusher removed), dropped (the ' +
      'recipient can no longer read the room)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly attachmentUploads = new Counter({
    name: 'parlor_attachment_uploads_total',
    help: 'Attachment uploads (streamed and direct) by outcome: stored, or refused (limits, type, failure)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly attachmentUploadBytes = new Counter({
    name: 'parlor_attachment_upload_bytes_total',
    help: 'Bytes of attachments stored by this instance',
    registers: [this.registry],
  });
  readonly attachmentsDeleted = new Counter({
    name: 'parlor_attachments_deleted_total',
    help: 'Attachments removed by the cleanup job (expired uploads, deleted messages and rooms)',
    registers: [this.registry],
  });
  /** Read at scrape time from the attachments table (set by AttachmentsService). */
  storedBytesSource?: () => Promise<number>;

  constructor(@InjectDataSource() dataSource: DataSource) {
    collectDefaultMetrics({ register: this.registry });
    const pool = () => (dataSource.driver as unknown as { master?: PgPool }).master;
    const registry = this.registry;
    const storedBytes = () => this.storedBytesSource?.();
    new Gauge({
      name: 'parlor_attachments_stored_bytes',
      help: 'Bytes of attachments stored (ready rows, all instances: read from the database)',
      registers: [registry],
      async collect() {
        const bytes = await storedBytes();
        if (bytes !== undefined) this.set(bytes);
      },
    });
    new Gauge({
      name: 'parlor_db_pool_connections',
      help: 'Database pool connections by state',
      labelNames: ['state'] as const,
      registers: [registry],
      collect() {
        const p = pool();
        if (!p) return;
        this.set({ state: 'total' }, p.totalCount);
        this.set({ state: 'idle' }, p.idleCount);
        this.set({ state: 'waiting' }, p.waitingCount);
      },
    });
  }
}
