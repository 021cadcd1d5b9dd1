import { z } from 'zod';
import { commonEnvSchema, databaseEnvSchema, monitoringEnvSchema, positiveInt } from '@syncline/platform';

export const syncWorkerEnvSchema = commonEnvSchema
  .extend(databaseEnvSchema.shape)
  .extend(monitoringEnvSchema.shape)
  .extend({
    /** Most mutations committed in one PostgreSQL transaction. */
    WORKER_BATCH_SIZE: positiveInt(500),
    /** Messages fetched ahead of processing, per worker. */
    WORKER_PREFETCH: positiveInt(1000),
    /**
     * Batches written at the same time, each on its own connection (keep it below
     * `DATABASE_POOL_SIZE`, which also serves reads and the outbox). While one batch commits, the
     * next is computed and sent; 1 writes one batch at a time.
     */
    WORKER_BATCHES_IN_FLIGHT: z.coerce.number().int().min(1).max(64).default(4),
    /**
     * Entities whose state the worker keeps, so a batch of entities it already knows is one
     * statement. Each entry holds the entity's document.
     */
    WORKER_ENTITY_CACHE_SIZE: z.coerce.number().int().min(0).default(50_000),
    /**
     * How long each pull request for mutations lasts while there is nothing to take: one idle
     * request per interval. Losing the pull (the node serving the consumer died) is noticed from
     * the heartbeats, every 500 ms, not from this. The NATS client takes no less than a second.
     */
    WORKER_PULL_EXPIRES_MS: z.coerce.number().int().min(1000).default(5_000),
    /**
     * Time a worker has to commit a batch before JetStream hands it to another worker. Set when the
     * shared consumer is created; shorter means faster takeover after a crash, longer tolerates
     * slower commits.
     */
    WORKER_ACK_WAIT_MS: positiveInt(30_000),
    /**
     * How far ahead of the worker's clock a mutation's HLC may be. Gateways check client mutations
     * already; this holds for what backend services publish straight onto NATS, where a timestamp
     * in the future would win every last-write-wins comparison.
     */
    MAX_CLOCK_SKEW_MS: positiveInt(60_000),
    /** Apply pending migrations at boot (under an advisory lock, so replicas migrate once). */
    MIGRATE_ON_BOOT: z
      .enum(['true', 'false'])
      .default('true')
      .transform((value) => value === 'true'),
    /** How often the outbox relay looks for committed changes not yet in CHANGES. */
    OUTBOX_RELAY_INTERVAL_MS: positiveInt(1000),
    /** A change unpublished for this long is taken over by the relay (its publisher likely died). */
    OUTBOX_RELAY_GRACE_MS: positiveInt(2000),
    /** The change log and the idempotency ledger keep this many hours. */
    CHANGE_LOG_RETENTION_HOURS: positiveInt(24 * 30),
    RETENTION_INTERVAL_MS: positiveInt(60 * 60 * 1000),
  });
export type SyncWorkerConfig = z.infer<typeof syncWorkerEnvSchema>;
