import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { ChangeRecord } from './entities/change-record.js';
import { ConflictPolicyRecord } from './entities/conflict-policy-record.js';
import { ConflictRecord } from './entities/conflict-record.js';
import { EntityRecord } from './entities/entity-record.js';
import { MutationRecord } from './entities/mutation-record.js';
import { RejectedMessageRecord } from './entities/rejected-message-record.js';
import { InitialSchema1732492800000 } from './migrations/1732492800000-initial-schema.js';
import { ChangeLogHorizon1732579200000 } from './migrations/1732579200000-change-log-horizon.js';
import { PublishWatermarkFromChangeLog1732665600000 } from './migrations/1732665600000-publish-watermark-from-change-log.js';
import { PublishedChangesIndex1732752000000 } from './migrations/1732752000000-published-changes-index.js';
import { ChangePositionsAndBatchOutbox1732838400000 } from './migrations/1732838400000-change-positions-and-batch-outbox.js';
import { MutationStreamOrder1732924800000 } from './migrations/1732924800000-mutation-stream-order.js';
import { RejectedMessageTenant1733011200000 } from './migrations/1733011200000-rejected-message-tenant.js';

export const ENTITIES = [
  EntityRecord,
  ChangeRecord,
  MutationRecord,
  ConflictRecord,
  ConflictPolicyRecord,
  RejectedMessageRecord,
];
export const MIGRATIONS = [
  InitialSchema1732492800000,
  ChangeLogHorizon1732579200000,
  PublishWatermarkFromChangeLog1732665600000,
  PublishedChangesIndex1732752000000,
  ChangePositionsAndBatchOutbox1732838400000,
  MutationStreamOrder1732924800000,
  RejectedMessageTenant1733011200000,
];

export interface DataSourceOptions {
  readonly url: string;
  readonly poolSize: number;
  readonly applicationName: string;
}

/** The schema is owned by migrations: `synchronize` stays off everywhere. */
export function createDataSource(options: DataSourceOptions): DataSource {
  return new DataSource({
    type: 'postgres',
    url: options.url,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    synchronize: false,
    migrationsRun: false,
    migrationsTransactionMode: 'all',
    applicationName: options.applicationName,
    extra: { max: options.poolSize },
  });
}

// Any constant works; it only has to be the same for every service that migrates.
const MIGRATION_LOCK_KEY = 0x53796e63;

/**
 * Applies pending migrations under a PostgreSQL advisory lock, so replicas booting together
 * migrate once and the others wait for the schema. The lock holds one connection of the pool
 * while the migrations run on another: the pool needs at least two.
 */
export async function runMigrations(dataSource: DataSource): Promise<string[]> {
  const runner = dataSource.createQueryRunner();
  await runner.connect();
  try {
    await runner.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    const applied = await dataSource.runMigrations({ transaction: 'all' });
    return applied.map((migration) => migration.name);
  } finally {
    await runner.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    await runner.release();
  }
}

/** The part of a `pg` pool the repositories on the hot path use. */
export interface PgPool {
  query(config: { name?: string; text: string; values?: unknown[] }): Promise<{ rows: Record<string, unknown>[] }>;
}

/**
 * The `pg` pool behind a data source. Statements on the mutation path go straight to it as named
 * (prepared) statements: planned once per connection instead of on every batch, and without the
 * query runner TypeORM wraps around each call.
 */
export function pgPool(dataSource: DataSource): PgPool {
  const pool = (dataSource.driver as unknown as { master?: PgPool }).master;
  if (!pool || typeof pool.query !== 'function') throw new Error('the data source has no initialized pg pool');
  return pool;
}
