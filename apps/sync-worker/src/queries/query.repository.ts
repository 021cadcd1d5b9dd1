import { Inject, Injectable } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import type {
  ChangesQuery,
  ChangesQueryResult,
  JsonObject,
  OutcomeQuery,
  OutcomeQueryResult,
  OutcomesQuery,
  OutcomesQueryResult,
  SnapshotQuery,
  SnapshotQueryResult,
  StatsQuery,
  StatsQueryResult,
  VectorClockRecord,
} from '@syncline/contracts';
import { changesTable } from '@syncline/persistence';
import { DATA_SOURCE } from '@syncline/platform';
import { changeEventOf } from '../outbox/change-publisher.service.js';
import { CHANGE_ROW_COLUMNS } from '../entities/change-row.js';

/** Reads for clients that sync from PostgreSQL: change log pages, snapshots, recorded outcomes. */
@Injectable()
export class QueryRepository {
  constructor(@Inject(DATA_SOURCE) private readonly dataSource: DataSource) {}

  async changes(query: ChangesQuery): Promise<ChangesQueryResult> {
    // A change's stream position is recorded shortly after it is published: one not recorded yet
    // is missing from a page by cursor (the stream serves those) and has no `seq` in an entity's history.
    const columns = changesTable.columnList(CHANGE_ROW_COLUMNS, 'c');
    const rows: Array<Record<string, unknown>> =
      query.entityId === undefined
        ? await this.dataSource.query(
            `SELECT ${columns}, p.seq FROM change_positions p
               JOIN changes c USING (tenant, entity_type, entity_id, version)
              WHERE p.tenant = $1 AND p.entity_type = $2 AND p.seq > $3 ORDER BY p.seq LIMIT $4`,
            [query.tenant, query.entityType, query.afterSeq ?? 0, query.limit + 1],
          )
        : await this.dataSource.query(
            `SELECT ${columns}, p.seq FROM changes c
               LEFT JOIN change_positions p USING (tenant, entity_type, entity_id, version)
              WHERE c.tenant = $1 AND c.entity_type = $2 AND c.entity_id = $3 AND c.version > $4
              ORDER BY c.version LIMIT $5`,
            [query.tenant, query.entityType, query.entityId, query.afterVersion ?? 0, query.limit + 1],
          );
    const horizon: Array<{ pruned_through_seq: string }> = await this.dataSource.query(
      `SELECT pruned_through_seq FROM change_log_horizon WHERE id = 1`,
    );
    return {
      changes: rows.slice(0, query.limit).map((row) => ({
        ...changeEventOf(changesTable.read(row, CHANGE_ROW_COLUMNS)),
        seq: row['seq'] === null ? null : Number(row['seq']),
      })),
      hasMore: rows.length > query.limit,
      prunedThroughSeq: Number(horizon[0]?.pruned_through_seq ?? 0),
    };
  }

  async health(): Promise<{ postgres: 'ok' }> {
    await this.dataSource.query('SELECT 1');
    return { postgres: 'ok' };
  }

  async stats(query: StatsQuery): Promise<StatsQueryResult> {
    const [row]: Array<{ changes: string; entities: string }> = await this.dataSource.query(
      `SELECT (SELECT count(*) FROM changes WHERE tenant = $1) AS changes,
              (SELECT count(*) FROM entities WHERE tenant = $1 AND NOT deleted AND version > 0) AS entities`,
      [query.tenant],
    );
    return { changes: Number(row?.changes ?? 0), entities: Number(row?.entities ?? 0) };
  }

  async snapshot(query: SnapshotQuery): Promise<SnapshotQueryResult> {
    const rows: Array<Record<string, unknown>> = await this.dataSource.query(
      `SELECT entity_id, version, data, deleted, vector_clock FROM entities
        WHERE tenant = $1 AND entity_type = $2 AND version > 0
          AND ($3::text IS NULL OR entity_id = $3) AND ($4::text IS NULL OR entity_id > $4)
        ORDER BY entity_id LIMIT $5`,
      [query.tenant, query.entityType, query.entityId ?? null, query.afterEntityId ?? null, query.limit + 1],
    );
    return {
      entities: rows.slice(0, query.limit).map((row) => ({
        entityId: row['entity_id'] as string,
        version: Number(row['version']),
        data: (row['data'] as JsonObject | null) ?? null,
        deleted: row['deleted'] as boolean,
        vectorClock: row['vector_clock'] as VectorClockRecord,
      })),
      hasMore: rows.length > query.limit,
    };
  }

  async outcome(query: OutcomeQuery): Promise<OutcomeQueryResult> {
    const [outcome] = (await this.outcomes({ tenant: query.tenant, mutationIds: [query.mutationId] })).outcomes;
    return outcome ? { found: true, outcome } : { found: false };
  }

  /**
   * What the ledger recorded for these mutations, with the entity's current document and clock
   * (the client rebases or rolls back on them). Marked `duplicate`: the entity may have moved on
   * since the mutation was processed.
   */
  async outcomes(query: OutcomesQuery): Promise<OutcomesQueryResult> {
    const rows: Array<Record<string, unknown>> = await this.dataSource.query(
      `SELECT m.mutation_id, m.entity_type, m.entity_id, m.status, m.version, m.code, e.data, e.deleted, e.vector_clock
         FROM mutations m
         LEFT JOIN entities e ON e.tenant = m.tenant AND e.entity_type = m.entity_type AND e.entity_id = m.entity_id
        WHERE m.tenant = $1 AND m.mutation_id = ANY($2)`,
      [query.tenant, query.mutationIds],
    );
    return {
      outcomes: rows.map((row) => {
        const status = row['status'] as 'applied' | 'merged' | 'rejected';
        return {
          mutationId: row['mutation_id'] as string,
          entityType: row['entity_type'] as string,
          entityId: row['entity_id'] as string,
          status,
          version: Number(row['version']),
          // The current document, which the client needs to rebase or roll back.
          ...(status === 'applied'
            ? {}
            : { data: row['deleted'] ? null : ((row['data'] as JsonObject | null) ?? null) }),
          vectorClock: (row['vector_clock'] as VectorClockRecord | null) ?? {},
          duplicate: true,
          ...(row['code'] === 'SUPERSEDED' ? { code: 'SUPERSEDED' as const } : {}),
        };
      }),
    };
  }
}
