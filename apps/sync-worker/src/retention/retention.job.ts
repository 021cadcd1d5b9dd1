import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { CONFIG, DATA_SOURCE, LOGGER, type Logger } from '@syncline/platform';
import type { SyncWorkerConfig } from '../config.js';

/**
 * Prunes the change log (with the positions of its rows) and the idempotency ledger by age.
 * Changes still in the outbox are kept whatever their age: it still owes them to CHANGES. Deleting in slices keeps each
 * transaction short so it never holds up the mutation path.
 */
@Injectable()
export class RetentionJob implements OnApplicationBootstrap, OnApplicationShutdown {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  constructor(
    @Inject(DATA_SOURCE) private readonly dataSource: DataSource,
    @Inject(CONFIG) private readonly config: SyncWorkerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => {
      this.running ??= this.pruneOnce().finally(() => {
        this.running = undefined;
      });
    }, this.config.RETENTION_INTERVAL_MS);
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** Deletes what is older than the retention window; returns the number of rows removed. */
  async pruneOnce(
    retentionHours = this.config.CHANGE_LOG_RETENTION_HOURS,
  ): Promise<{ changes: number; mutations: number }> {
    const removed = { changes: 0, mutations: 0 };
    try {
      // The horizon moves in the same statement as the delete, so a reader never meets a gap it cannot detect.
      removed.changes = await this.pruneInSlices(
        `WITH doomed AS (
           SELECT id FROM changes c
            WHERE created_at < now() - make_interval(hours => $1)
              AND NOT EXISTS (SELECT 1 FROM outbox o WHERE c.id = ANY(o.change_ids))
            LIMIT 5000
         ), pruned AS (
           DELETE FROM changes c USING doomed d WHERE c.id = d.id
           RETURNING c.tenant, c.entity_type, c.entity_id, c.version
         ), pruned_positions AS (
           DELETE FROM change_positions p USING pruned d
            WHERE p.tenant = d.tenant AND p.entity_type = d.entity_type AND p.entity_id = d.entity_id
              AND p.version = d.version
           RETURNING p.seq
         ), horizon AS (
           UPDATE change_log_horizon
              SET pruned_through_seq = GREATEST(pruned_through_seq, (SELECT max(seq) FROM pruned_positions)),
                  updated_at = now()
            WHERE id = 1 AND EXISTS (SELECT 1 FROM pruned_positions)
         )
         SELECT count(*)::int AS count FROM pruned`,
        retentionHours,
      );
      removed.mutations = await this.pruneInSlices(
        `DELETE FROM mutations WHERE (tenant, mutation_id) IN (
           SELECT tenant, mutation_id FROM mutations WHERE created_at < now() - make_interval(hours => $1) LIMIT 5000)`,
        retentionHours,
      );
      if (removed.changes + removed.mutations > 0) this.logger.info(removed, 'retention pruned rows');
    } catch (error) {
      this.logger.warn({ err: error }, 'retention failed; retrying on the next tick');
    }
    return removed;
  }

  private async pruneInSlices(sql: string, retentionHours: number): Promise<number> {
    let total = 0;
    for (;;) {
      const count = await this.runSlice(sql, retentionHours);
      total += count;
      if (count < 5000) return total;
    }
  }

  private async runSlice(sql: string, retentionHours: number): Promise<number> {
    const result: unknown = await this.dataSource.query(sql, [retentionHours]);
    // A SELECT returns its rows; a bare DELETE returns [rows, affected count].
    if (Array.isArray(result) && typeof result[1] === 'number') return result[1];
    return Number((result as Array<{ count: number }>)[0]?.count ?? 0);
  }
}
