/** Messages between the orchestrator (bench/main.ts) and its load workers (bench/worker.ts). */
import type { EncodedHistogram } from './hist';

/**
 * Both kinds use the same bare socket.io-client path; they differ only in the handshake:
 * `parlor` sends the user's access token, `ref` the rooms to join.
 */
export type ConnKind = 'parlor' | 'ref';

export interface ConnSpec {
  url: string;
  /** Parlor: the access token from the real API. */
  token?: string;
  /** Reference: the rooms to join (Parlor subscribes a socket to its rooms by itself). */
  rooms?: string[];
  /** Room to send to, per room shape (e.g. `small` → this user's 10-member room). */
  sendTo: Record<string, string>;
}

export interface StepSpec {
  id: number;
  group: string;
  shape: string;
  /** Messages per second sent by this worker (open loop: on schedule, whatever the server does). */
  rate: number;
  /** Absolute start on the monotonic clock, shared by all workers, plus this worker's offset. */
  startAt: number;
  /** Sending time, warm-up included. */
  durationMs: number;
  /** Latencies of messages scheduled before startAt + warmupMs are not recorded. */
  warmupMs: number;
  /** Messages this worker sends in the step (its share of rate × duration). */
  count: number;
  payloadBytes: number;
}

export type ToWorker =
  | { t: 'open'; group: string; kind: ConnKind; conns: ConnSpec[]; concurrency: number }
  | { t: 'step'; step: StepSpec }
  | { t: 'collect'; id: number }
  | { t: 'close'; group: string }
  | { t: 'exit' };

export interface StepStats {
  id: number;
  sent: number;
  acked: number;
  ackErrors: Record<string, number>;
  received: number;
  /** Events of an earlier step that arrived after it was collected. */
  late: number;
  /** Histograms (µs): scheduled send → each receiver; scheduled send → ack. */
  latency: EncodedHistogram;
  ack: EncodedHistogram;
  /** How late each send left against its schedule (µs): the generator keeping up or not. */
  lag: EncodedHistogram;
  /** This worker's own CPU time (user + system) and wall time while it was sending. */
  cpuMs: number;
  sendWallMs: number;
}

export type FromWorker =
  | { t: 'ready' }
  | { t: 'opened'; group: string; ok: number; failed: number; errors: string[] }
  | { t: 'open-progress'; group: string; done: number }
  | { t: 'step-progress'; id: number; sent: number; received: number; sendingDone: boolean }
  | { t: 'stats'; stats: StepStats }
  | { t: 'closed'; group: string };
