import { Inject, Injectable } from '@nestjs/common';
import { CONFIG } from '@syncline/platform';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { GatewayConfig } from '../config.js';
import { ConnectionRegistry } from '../connections/connection.registry.js';
import { WorkerQueue } from '../limits/worker-queue.js';
import { SseService } from '../sse/sse.service.js';

/**
 * What `/metrics` exposes in the Prometheus text format. Gauges are read when scraped; the
 * counters and the latency histogram are updated on the hot paths, which costs an increment.
 */
@Injectable()
export class PrometheusMetrics {
  readonly registry = new Registry();

  readonly mutations = new Counter({
    name: 'syncline_mutations_total',
    help: 'Mutations received by this gateway, by edge and result (accepted, or the refusal code)',
    labelNames: ['edge', 'result'] as const,
    registers: [this.registry],
  });

  readonly deliveryLatency = new Histogram({
    name: 'syncline_delivery_latency_seconds',
    help: 'From a gateway receiving a mutation to this gateway handing its change to subscribers',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 5],
    registers: [this.registry],
  });

  readonly conflicts = new Counter({
    name: 'syncline_conflicts_total',
    help: 'Concurrent mutations of clients of this gateway, by the conflict strategy that decided and the result',
    labelNames: ['strategy', 'status'] as const,
    registers: [this.registry],
  });

  constructor(
    connections: ConnectionRegistry,
    sse: SseService,
    private readonly workerQueue: WorkerQueue,
    @Inject(CONFIG) config: GatewayConfig,
  ) {
    this.registry.setDefaultLabels({ instance: config.INSTANCE_ID ?? 'gateway' });
    collectDefaultMetrics({ register: this.registry, prefix: 'syncline_gateway_' });
    new Gauge({
      name: 'syncline_connections',
      help: 'Open client connections on this gateway, by transport',
      labelNames: ['transport'] as const,
      registers: [this.registry],
      collect() {
        this.set({ transport: 'websocket' }, connections.size);
        this.set({ transport: 'sse' }, sse.size);
      },
    });
    const readWorkerConsumer = () => this.workerConsumer();
    new Gauge({
      name: 'syncline_worker_consumer_pending',
      help: 'Mutations in MUTATIONS the workers have not acknowledged yet (waiting, and in progress)',
      labelNames: ['state'] as const,
      registers: [this.registry],
      async collect() {
        const info = await readWorkerConsumer();
        if (!info) return;
        this.set({ state: 'waiting' }, info.num_pending);
        this.set({ state: 'in_progress' }, info.num_ack_pending);
      },
    });
  }

  /** The workers' durable consumer, or undefined when it cannot be read (no worker started yet). */
  workerConsumer(): Promise<{ num_pending: number; num_ack_pending: number } | undefined> {
    return this.workerQueue.read();
  }
}
