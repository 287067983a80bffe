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
  readonly sendToAck = new Histogram({
    name: 'parlor_send_ack_seconds',
    help: 'message.send: from command received to ack sent (includes the commit)',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
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
    help: 'Persona replies by how they ended',
    labelNames: ['finish_reason'] as const,
    registers: [this.registry],
  });
  readonly personaLatency = new Histogram({
    name: 'parlor_persona_generation_seconds',
    help: 'Persona reply generation time, start to end',
    buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });

  constructor(@InjectDataSource() dataSource: DataSource) {
    collectDefaultMetrics({ register: this.registry });
    const pool = () => (dataSource.driver as unknown as { master?: PgPool }).master;
    const registry = this.registry;
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
