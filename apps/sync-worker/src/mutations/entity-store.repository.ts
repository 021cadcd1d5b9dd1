import { Inject, Injectable } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { VectorClocks, type FieldChange, type VectorClockRecord } from '@syncline/contracts';
import {
  changesTable,
  conflictsTable,
  entitiesTable,
  mutationsTable,
  outboxTable,
  pgPool,
  type ConflictsRow,
  type MutationsRow,
  type PgPool,
} from '@syncline/persistence';
import { DATA_SOURCE } from '@syncline/platform';
import { CHANGE_ROW_COLUMNS, type ChangeRow } from '../entities/change-row.js';
import { compareKeys, keyOf, type EntityKey } from '../entities/entity-key.js';
import { NEW_ENTITY, type EntityState } from '../entities/entity-state.js';
import type { LaterWrites, StreamPosition } from './mutation-rules.js';

/** A ledger row: what became of a mutation id. */
export type ProcessedMutation = Omit<MutationsRow, 'createdAt'>;
export type ConflictRow = Omit<ConflictsRow, 'id' | 'createdAt'>;

/** An entity row as a batch leaves it, and the version the batch found it at. */
export interface EntityWrite extends EntityKey {
  readonly expectedVersion: number;
  readonly version: number;
  readonly data: EntityState['data'];
  readonly deleted: boolean;
  readonly vectorClock: VectorClockRecord;
  readonly hlc: string;
  readonly appliedStream: string;
  readonly appliedSeq: number;
}

export interface BatchWrites {
  readonly changes: readonly ChangeRow[];
  readonly mutations: readonly ProcessedMutation[];
  readonly conflicts: readonly ConflictRow[];
  readonly entities: readonly EntityWrite[];
}

const STATE_COLUMNS = [
  'tenant',
  'entityType',
  'entityId',
  'version',
  'data',
  'deleted',
  'vectorClock',
  'hlc',
  'appliedStream',
  'appliedSeq',
] as const;
const LEDGER_COLUMNS = ['tenant', 'mutationId', 'entityType', 'entityId', 'status', 'version', 'code'] as const;
const CONFLICT_COLUMNS = [
  'tenant',
  'entityType',
  'entityId',
  'mutationId',
  'strategy',
  'winner',
  'baseVersion',
  'serverVersion',
  'resultVersion',
  'base',
  'serverData',
  'clientData',
  'result',
  'contested',
  'serverHlc',
  'clientHlc',
] as const;

const LOAD_ENTITIES = {
  name: 'syncline_load_entities',
  text: `SELECT ${entitiesTable.columnList(STATE_COLUMNS, 'e')}
           FROM unnest($1::text[], $2::text[], $3::text[]) AS k(tenant, entity_type, entity_id)
           JOIN entities e USING (tenant, entity_type, entity_id)`,
};

const LOAD_LEDGER = {
  name: 'syncline_load_ledger',
  text: `SELECT ${mutationsTable.columnList(LEDGER_COLUMNS, 'm')}
           FROM unnest($1::text[], $2::text[]) AS k(tenant, mutation_id)
           JOIN mutations m USING (tenant, mutation_id)`,
};

const CHANGES_AFTER = {
  name: 'syncline_changes_after',
  text: `SELECT version, changes FROM changes
          WHERE tenant = $1 AND entity_type = $2 AND entity_id = $3 AND version > $4
          ORDER BY version`,
};

// For a mutation that arrives late: the changes stored after it (a range of `changes_by_mutation_seq`),
// and the newest of the others (the entity's versions, newest first, skipping those few).
const STREAM_ORDER_AROUND = {
  name: 'syncline_stream_order_around',
  text: `(SELECT true AS later, version, op, deleted, changes, client_id, NULL::jsonb AS vector_clock FROM changes
           WHERE tenant = $1 AND entity_type = $2 AND entity_id = $3 AND mutation_seq > $5 AND mutation_stream = $4)
         UNION ALL
         (SELECT false, version, op, deleted, NULL, client_id, vector_clock FROM changes
           WHERE tenant = $1 AND entity_type = $2 AND entity_id = $3
             AND NOT (mutation_seq > $5 AND mutation_stream = $4)
           ORDER BY version DESC LIMIT 1)`,
};

const ENTITY_WRITE_COLUMNS = [...STATE_COLUMNS, 'expectedVersion'] as const;
const entityWrites = (alias: string) =>
  `jsonb_to_recordset($4::jsonb) AS ${alias}(${ENTITY_WRITE_COLUMNS.map(
    (key) => `"${key}" ${key === 'expectedVersion' ? 'bigint' : entitiesTable.columns[key].type}`,
  ).join(', ')})`;

/**
 * A whole batch in one statement, hence one round trip and one commit: change log, outbox entry,
 * ledger, conflicts and entity rows. An entity row is written only if it still has the version
 * the batch was computed on (0: not yet created); if any is not, `syncline_expect_rows` fails the
 * statement and nothing of it stays. Entity rows are sorted by key, so two workers writing the
 * same entities take their row locks in the same order.
 */
const WRITE_BATCH = {
  name: 'syncline_write_batch',
  text: `WITH new_changes AS (
           ${changesTable.insertFromJson('$1', CHANGE_ROW_COLUMNS)}
           RETURNING id
         ), new_outbox AS (
           INSERT INTO ${outboxTable.name} (change_ids)
           SELECT array_agg(id ORDER BY id) FROM new_changes HAVING count(*) > 0
           RETURNING id
         ), new_ledger AS (
           ${mutationsTable.insertFromJson('$2', LEDGER_COLUMNS)}
         ), new_conflicts AS (
           ${conflictsTable.insertFromJson('$3', CONFLICT_COLUMNS)}
         ), created AS (
           INSERT INTO entities AS e (${entitiesTable.columnList(STATE_COLUMNS)})
           SELECT ${STATE_COLUMNS.map((key) => `x."${key}"`).join(', ')} FROM ${entityWrites('x')}
            WHERE x."expectedVersion" = 0
           ON CONFLICT (tenant, entity_type, entity_id) DO UPDATE
              SET version = EXCLUDED.version, data = EXCLUDED.data, deleted = EXCLUDED.deleted,
                  vector_clock = EXCLUDED.vector_clock, hlc = EXCLUDED.hlc, applied_stream = EXCLUDED.applied_stream,
                  applied_seq = EXCLUDED.applied_seq, updated_at = now()
            WHERE e.version = 0
           RETURNING 1
         ), updated AS (
           UPDATE entities e
              SET version = x."version", data = x."data", deleted = x."deleted", vector_clock = x."vectorClock",
                  hlc = x."hlc", applied_stream = x."appliedStream", applied_seq = x."appliedSeq", updated_at = now()
             FROM ${entityWrites('x')}
            WHERE x."expectedVersion" > 0 AND e.tenant = x."tenant" AND e.entity_type = x."entityType"
              AND e.entity_id = x."entityId" AND e.version = x."expectedVersion"
           RETURNING 1
         )
         SELECT syncline_expect_rows((SELECT count(*) FROM created) + (SELECT count(*) FROM updated), $5) AS written,
                (SELECT id FROM new_outbox) AS outbox_id`,
};

/**
 * The worker's only access to PostgreSQL for mutations: reads of entities it does not know yet,
 * of the ledger and of change logs for conflicts, and the one statement that writes a batch.
 * All are named statements with parameters, planned once per connection.
 */
@Injectable()
export class EntityStoreRepository {
  private readonly pool: PgPool;

  constructor(@Inject(DATA_SOURCE) dataSource: DataSource) {
    this.pool = pgPool(dataSource);
  }

  /** The current state of each entity, by `keyOf`; one that does not exist yet is at version 0. */
  async load(keys: readonly EntityKey[]): Promise<Map<string, EntityState>> {
    const states = new Map<string, EntityState>(keys.map((key) => [keyOf(key), NEW_ENTITY]));
    if (keys.length === 0) return states;
    const { rows } = await this.pool.query({
      ...LOAD_ENTITIES,
      values: [keys.map((k) => k.tenant), keys.map((k) => k.entityType), keys.map((k) => k.entityId)],
    });
    for (const raw of rows) {
      const row = entitiesTable.read(raw, STATE_COLUMNS);
      states.set(keyOf(row), {
        version: row.version,
        data: row.data,
        deleted: row.deleted,
        vectorClock: VectorClocks.fromRecord(row.vectorClock),
        hlc: row.hlc,
        appliedStream: row.appliedStream,
        appliedSeq: row.appliedSeq,
      });
    }
    return states;
  }

  /** What the ledger recorded for these mutation ids (those it knows). */
  async ledger(ids: readonly { tenant: string; mutationId: string }[]): Promise<ProcessedMutation[]> {
    if (ids.length === 0) return [];
    const { rows } = await this.pool.query({
      ...LOAD_LEDGER,
      values: [ids.map((id) => id.tenant), ids.map((id) => id.mutationId)],
    });
    return rows.map((row) => mutationsTable.read(row, LEDGER_COLUMNS));
  }

  /** An entity's logged changes after `version`, oldest first. */
  async changesAfter(key: EntityKey, version: number): Promise<{ version: number; changes: FieldChange[] }[]> {
    const { rows } = await this.pool.query({
      ...CHANGES_AFTER,
      values: [key.tenant, key.entityType, key.entityId, version],
    });
    return rows.map((row) => ({ version: Number(row['version']), changes: row['changes'] as FieldChange[] }));
  }

  /** What the entity's mutations stored after `position` in MUTATIONS wrote, and what came before them. */
  async laterWrites(key: EntityKey, position: StreamPosition): Promise<LaterWrites> {
    const { rows } = await this.pool.query({
      ...STREAM_ORDER_AROUND,
      values: [key.tenant, key.entityType, key.entityId, position.stream, position.seq],
    });
    const fields = new Set<string>();
    const clients = new Set<string>();
    let replaced = false;
    let before: LaterWrites['before'] = { version: 0, vectorClock: VectorClocks.empty() };
    for (const row of rows) {
      if (!row['later']) {
        before = {
          version: Number(row['version']),
          vectorClock: VectorClocks.fromRecord(row['vector_clock'] as VectorClockRecord),
        };
        continue;
      }
      if (row['op'] !== 'patch' || row['deleted'] === true) replaced = true;
      clients.add(row['client_id'] as string);
      for (const change of row['changes'] as FieldChange[]) fields.add(change.field);
    }
    return { replaced, fields, clients, before };
  }

  /**
   * Commits a batch. Resolves with the id of its outbox entry (none when it changed nothing);
   * fails with PostgreSQL's `serialization_failure` when an entity was written meanwhile.
   */
  async write(writes: BatchWrites): Promise<{ outboxId: number | undefined }> {
    const entities = [...writes.entities].sort(compareKeys);
    const { rows } = await this.pool.query({
      ...WRITE_BATCH,
      values: [
        JSON.stringify(writes.changes),
        JSON.stringify(writes.mutations),
        JSON.stringify(writes.conflicts),
        JSON.stringify(entities),
        entities.length,
      ],
    });
    const outboxId = rows[0]?.['outbox_id'];
    return { outboxId: outboxId === null || outboxId === undefined ? undefined : Number(outboxId) };
  }
}
