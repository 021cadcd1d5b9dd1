import { Inject, Injectable } from '@nestjs/common';
import { METRICS_REGISTRY } from '@syncline/platform';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { MutationOutcome } from '../mutations/incoming-mutation.js';

/** What the worker's `/metrics` adds to the process metrics. */
@Injectable()
export class WorkerMetrics {
  private readonly mutations: Counter<'status'>;
  private readonly conflicts: Counter<'strategy' | 'status'>;
  private readonly batchSeconds: Histogram;
  private readonly batchSize: Histogram;
  private readBacklog: () => number = () => 0;
  /** Batches that failed and were tried again (a stale entity, a repeated mutation id, an outage). */
  readonly retries: Counter<'reason'>;

  constructor(@Inject(METRICS_REGISTRY) registry: Registry) {
    this.mutations = new Counter({
      name: 'syncline_worker_mutations_total',
      help: 'Mutations this worker processed, by outcome (applied, merged, rejected, superseded, duplicate)',
      labelNames: ['status'],
      registers: [registry],
    });
    this.conflicts = new Counter({
      name: 'syncline_conflicts_resolved_total',
      help: 'Concurrent mutations, by the conflict strategy that decided and the outcome',
      labelNames: ['strategy', 'status'],
      registers: [registry],
    });
    this.batchSeconds = new Histogram({
      name: 'syncline_worker_batch_duration_seconds',
      help: 'Time to compute and commit one batch of mutations',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    });
    this.batchSize = new Histogram({
      name: 'syncline_worker_batch_size',
      help: 'Mutations per committed batch',
      buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000],
      registers: [registry],
    });
    this.retries = new Counter({
      name: 'syncline_worker_batch_retries_total',
      help: 'Batches that failed and were tried again in place, by reason (stale, repeated-mutation, transient)',
      labelNames: ['reason'],
      registers: [registry],
    });
    const backlog: Gauge = new Gauge({
      name: 'syncline_worker_backlog',
      help: 'Mutations this worker holds: waiting for a batch or being written',
      registers: [registry],
      collect: () => backlog.set(this.readBacklog()),
    });
  }

  observeBacklog(read: () => number): void {
    this.readBacklog = read;
  }

  recordBatch(outcomes: readonly MutationOutcome[], startedAt: number): void {
    this.batchSeconds.observe((performance.now() - startedAt) / 1000);
    this.batchSize.observe(outcomes.length);
    for (const outcome of outcomes) {
      this.mutations.inc({
        status: outcome.duplicate ? 'duplicate' : outcome.code === 'SUPERSEDED' ? 'superseded' : outcome.status,
      });
      if (outcome.strategy) this.conflicts.inc({ strategy: outcome.strategy, status: outcome.status });
    }
  }
}
