import { Inject, Injectable } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import {
  changePositionsTable,
  changesTable,
  outboxTable,
  pgPool,
  type ChangePositionsRow,
  type PgPool,
} from '@syncline/persistence';
import { DATA_SOURCE } from '@syncline/platform';
import { CHANGE_ROW_COLUMNS, type ChangeRow } from '../entities/change-row.js';
import type { EntityKey } from '../entities/entity-key.js';

/** Where a published change is in CHANGES. */
export type ChangePosition = ChangePositionsRow;

/** A batch whose changes were not all published by the worker that committed it. */
export interface OrphanedBatch {
  readonly outboxId: number;
  /** Its changes' entities, with the oldest version of each in the batch. */
  readonly entities: readonly (EntityKey & { readonly fromVersion: number })[];
}

const POSITION_COLUMNS = ['tenant', 'entityType', 'seq', 'entityId', 'version'] as const;

/**
 * Publications are recorded in bulk: the positions of the changes, and the outbox entries of the
 * batches now entirely in CHANGES. A position is recorded once; a change published twice (a relay
 * racing its worker) has the same position both times.
 */
const RECORD_PUBLISHED = {
  name: 'syncline_record_published',
  text: `WITH positions AS (
           ${changePositionsTable.insertFromJson('$1', POSITION_COLUMNS)}
           ON CONFLICT DO NOTHING
         )
         DELETE FROM ${outboxTable.name} WHERE id = ANY($2::bigint[])`,
};

const CHANGES_FROM = {
  name: 'syncline_changes_from',
  text: `SELECT ${changesTable.columnList(CHANGE_ROW_COLUMNS)} FROM changes
          WHERE tenant = $1 AND entity_type = $2 AND entity_id = $3 AND version >= $4
          ORDER BY version`,
};

const ORPHANED = {
  name: 'syncline_orphaned_batches',
  text: `SELECT o.id, c.tenant, c.entity_type, c.entity_id, min(c.version) AS from_version
           FROM (SELECT id, change_ids FROM outbox
                  WHERE created_at < now() - make_interval(secs => $1::double precision / 1000)
                  ORDER BY id LIMIT $2) o
           JOIN changes c ON c.id = ANY(o.change_ids)
          GROUP BY o.id, c.tenant, c.entity_type, c.entity_id
          ORDER BY o.id`,
};

/** The outbox side of the change log: what is still to publish, and recording what was. */
@Injectable()
export class OutboxRepository {
  private readonly pool: PgPool;

  constructor(@Inject(DATA_SOURCE) dataSource: DataSource) {
    this.pool = pgPool(dataSource);
  }

  async recordPublished(positions: readonly ChangePosition[], outboxIds: readonly number[]): Promise<void> {
    if (positions.length === 0 && outboxIds.length === 0) return;
    await this.pool.query({ ...RECORD_PUBLISHED, values: [JSON.stringify(positions), outboxIds] });
  }

  /** An entity's logged changes from `version` on, oldest first. */
  async changesFrom(key: EntityKey, version: number): Promise<ChangeRow[]> {
    const { rows } = await this.pool.query({
      ...CHANGES_FROM,
      values: [key.tenant, key.entityType, key.entityId, version],
    });
    return rows.map((row) => changesTable.read(row, CHANGE_ROW_COLUMNS));
  }

  /** Outbox entries older than `graceMs`: their worker did not finish publishing them. */
  async orphaned(graceMs: number, limit: number): Promise<OrphanedBatch[]> {
    const { rows } = await this.pool.query({ ...ORPHANED, values: [graceMs, limit] });
    const batches = new Map<number, (EntityKey & { fromVersion: number })[]>();
    for (const row of rows) {
      const id = Number(row['id']);
      const entities = batches.get(id) ?? [];
      entities.push({
        tenant: row['tenant'] as string,
        entityType: row['entity_type'] as string,
        entityId: row['entity_id'] as string,
        fromVersion: Number(row['from_version']),
      });
      batches.set(id, entities);
    }
    return [...batches].map(([outboxId, entities]) => ({ outboxId, entities }));
  }
}
