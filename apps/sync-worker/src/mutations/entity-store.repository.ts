import { Inject, Injectable } from '@nestjs/common';
import type { DataSource, QueryRunner } from 'typeorm';
import {
  VectorClocks,
  type FieldDiff,
  type JsonObject,
  type MutationStatus,
  type VectorClockRecord,
} from '@syncline/contracts';
import { DATA_SOURCE } from '@syncline/platform';
import type { EntityState } from './mutation-rules.js';

export interface EntityKey {
  readonly tenant: string;
  readonly entityType: string;
  readonly entityId: string;
}

export interface LockedEntity extends EntityState {
  readonly key: EntityKey;
  /**
   * CHANGES sequence of the current version, when its publication is recorded: the sequence the
   * next version's publish expects to follow (0 for an entity without versions).
   */
  readonly currentSeq: number | undefined;
}

export interface ProcessedMutation {
  readonly tenant: string;
  readonly mutationId: string;
  readonly entityType: string;
  readonly entityId: string;
  readonly status: MutationStatus;
  readonly version: number;
}

export interface ChangeRow extends EntityKey {
  readonly version: number;
  readonly mutationId: string;
  readonly clientId: string;
  readonly op: string;
  readonly status: MutationStatus;
  readonly changes: readonly FieldDiff[];
  readonly deleted: boolean;
  readonly vectorClock: VectorClockRecord;
  readonly hlc: string;
  readonly traceparent: string | null;
  readonly gatewayId: string | null;
  readonly connectionId: string | null;
  readonly receivedAt: number | null;
}

export interface ConflictRow extends EntityKey {
  readonly mutationId: string;
  readonly strategy: string;
  readonly winner: string;
  readonly baseVersion: number;
  readonly serverVersion: number;
  readonly resultVersion: number;
  readonly base: JsonObject | null;
  readonly serverData: JsonObject | null;
  readonly clientData: JsonObject | null;
  readonly result: JsonObject | null;
  readonly contested: readonly string[];
  readonly serverHlc: string;
  readonly clientHlc: string;
}

export interface EntityRow extends EntityKey {
  readonly version: number;
  readonly data: JsonObject | null;
  readonly deleted: boolean;
  readonly vectorClock: VectorClockRecord;
  readonly hlc: string;
}

export interface BatchWrites {
  readonly changes: readonly ChangeRow[];
  readonly mutations: readonly ProcessedMutation[];
  readonly conflicts: readonly ConflictRow[];
  readonly entities: readonly EntityRow[];
}

/** A transaction of the store: every method runs inside it. */
export interface StoreTransaction {
  findProcessed(mutations: readonly { tenant: string; mutationId: string }[]): Promise<ProcessedMutation[]>;
  lockEntities(keys: readonly EntityKey[]): Promise<LockedEntity[]>;
  changesAfter(key: EntityKey, version: number): Promise<{ version: number; changes: FieldDiff[] }[]>;
  write(writes: BatchWrites): Promise<void>;
}

/**
 * The worker's only access to PostgreSQL for mutations. Every statement handles a whole batch,
 * so a transaction costs the same few round trips for one mutation or five hundred.
 */
@Injectable()
export class EntityStoreRepository {
  constructor(@Inject(DATA_SOURCE) private readonly dataSource: DataSource) {}

  async transaction<T>(work: (tx: StoreTransaction) => Promise<T>): Promise<T> {
    const runner = this.dataSource.createQueryRunner();
    await runner.connect();
    try {
      // The default isolation (read committed) is what the row locks need; naming it would cost a round trip.
      await runner.startTransaction();
      const result = await work(new SqlStoreTransaction(runner));
      await runner.commitTransaction();
      return result;
    } catch (error) {
      if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => undefined);
      throw error;
    } finally {
      await runner.release();
    }
  }
}

class SqlStoreTransaction implements StoreTransaction {
  constructor(private readonly runner: QueryRunner) {}

  async findProcessed(mutations: readonly { tenant: string; mutationId: string }[]): Promise<ProcessedMutation[]> {
    if (mutations.length === 0) return [];
    const rows: Array<Record<string, string>> = await this.runner.query(
      `SELECT m.tenant, m.mutation_id, m.entity_type, m.entity_id, m.status, m.version
         FROM mutations m
         JOIN unnest($1::text[], $2::text[]) AS k(tenant, mutation_id)
           ON m.tenant = k.tenant AND m.mutation_id = k.mutation_id`,
      [mutations.map((m) => m.tenant), mutations.map((m) => m.mutationId)],
    );
    return rows.map((row) => ({
      tenant: row['tenant'] as string,
      mutationId: row['mutation_id'] as string,
      entityType: row['entity_type'] as string,
      entityId: row['entity_id'] as string,
      status: row['status'] as MutationStatus,
      version: Number(row['version']),
    }));
  }

  /**
   * Creates missing entity rows and locks all of them, in one statement. `ON CONFLICT DO UPDATE`
   * takes the row lock of an existing row and returns it; keys are sorted so two workers always
   * lock in the same order and cannot deadlock each other.
   */
  async lockEntities(keys: readonly EntityKey[]): Promise<LockedEntity[]> {
    const sorted = [...keys].sort(compareKeys);
    const rows: Array<Record<string, unknown>> = await this.runner.query(
      `WITH locked AS (
         INSERT INTO entities AS e (tenant, entity_type, entity_id)
         SELECT k.tenant, k.entity_type, k.entity_id
           FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k(tenant, entity_type, entity_id, n)
          ORDER BY k.n
         ON CONFLICT (tenant, entity_type, entity_id) DO UPDATE SET version = e.version
         RETURNING tenant, entity_type, entity_id, version, data, deleted, vector_clock, hlc
       )
       SELECT l.*, CASE WHEN l.version = 0 THEN 0 ELSE c.seq END AS current_seq
         FROM locked l
         LEFT JOIN changes c
           ON c.tenant = l.tenant AND c.entity_type = l.entity_type AND c.entity_id = l.entity_id AND c.version = l.version`,
      [sorted.map((k) => k.tenant), sorted.map((k) => k.entityType), sorted.map((k) => k.entityId)],
    );
    return rows.map((row) => ({
      key: {
        tenant: row['tenant'] as string,
        entityType: row['entity_type'] as string,
        entityId: row['entity_id'] as string,
      },
      version: Number(row['version']),
      data: (row['data'] as JsonObject | null) ?? null,
      deleted: row['deleted'] as boolean,
      vectorClock: VectorClocks.fromRecord(row['vector_clock'] as VectorClockRecord),
      hlc: row['hlc'] as string,
      currentSeq: row['current_seq'] === null ? undefined : Number(row['current_seq']),
    }));
  }

  async changesAfter(key: EntityKey, version: number): Promise<{ version: number; changes: FieldDiff[] }[]> {
    const rows: Array<{ version: string; changes: FieldDiff[] }> = await this.runner.query(
      `SELECT version, changes FROM changes
        WHERE tenant = $1 AND entity_type = $2 AND entity_id = $3 AND version > $4
        ORDER BY version`,
      [key.tenant, key.entityType, key.entityId, version],
    );
    return rows.map((row) => ({ version: Number(row.version), changes: row.changes }));
  }

  /** All writes of a batch in one statement: change log, ledger, conflicts and entity rows. */
  async write(writes: BatchWrites): Promise<void> {
    await this.runner.query(
      `WITH new_changes AS (
         INSERT INTO changes (tenant, entity_type, entity_id, version, mutation_id, client_id, op, status, changes,
                              deleted, vector_clock, hlc, traceparent, gateway_id, connection_id, received_at)
         SELECT "tenant", "entityType", "entityId", "version", "mutationId", "clientId", "op", "status", "changes",
                "deleted", "vectorClock", "hlc", "traceparent", "gatewayId", "connectionId", "receivedAt"
           FROM jsonb_to_recordset($1::jsonb) AS x("tenant" text, "entityType" text, "entityId" text, "version" bigint,
                "mutationId" text, "clientId" text, "op" text, "status" text, "changes" jsonb, "deleted" boolean,
                "vectorClock" jsonb, "hlc" text, "traceparent" text, "gatewayId" text, "connectionId" text, "receivedAt" bigint)
       ), new_mutations AS (
         INSERT INTO mutations (tenant, mutation_id, entity_type, entity_id, status, version)
         SELECT "tenant", "mutationId", "entityType", "entityId", "status", "version"
           FROM jsonb_to_recordset($2::jsonb) AS x("tenant" text, "mutationId" text, "entityType" text, "entityId" text,
                "status" text, "version" bigint)
       ), new_conflicts AS (
         INSERT INTO conflicts (tenant, entity_type, entity_id, mutation_id, strategy, winner, base_version, server_version,
                                result_version, base, server_data, client_data, result, contested, server_hlc, client_hlc)
         SELECT "tenant", "entityType", "entityId", "mutationId", "strategy", "winner", "baseVersion", "serverVersion",
                "resultVersion", "base", "serverData", "clientData", "result", "contested", "serverHlc", "clientHlc"
           FROM jsonb_to_recordset($3::jsonb) AS x("tenant" text, "entityType" text, "entityId" text, "mutationId" text,
                "strategy" text, "winner" text, "baseVersion" bigint, "serverVersion" bigint, "resultVersion" bigint,
                "base" jsonb, "serverData" jsonb, "clientData" jsonb, "result" jsonb, "contested" jsonb,
                "serverHlc" text, "clientHlc" text)
       )
       UPDATE entities e
          SET version = x."version", data = x."data", deleted = x."deleted", vector_clock = x."vectorClock",
              hlc = x."hlc", updated_at = now()
         FROM jsonb_to_recordset($4::jsonb) AS x("tenant" text, "entityType" text, "entityId" text, "version" bigint,
              "data" jsonb, "deleted" boolean, "vectorClock" jsonb, "hlc" text)
        WHERE e.tenant = x."tenant" AND e.entity_type = x."entityType" AND e.entity_id = x."entityId"`,
      [
        JSON.stringify(writes.changes),
        JSON.stringify(writes.mutations),
        JSON.stringify(writes.conflicts),
        JSON.stringify(writes.entities),
      ],
    );
  }
}

export function compareKeys(a: EntityKey, b: EntityKey): number {
  return compare(a.tenant, b.tenant) || compare(a.entityType, b.entityType) || compare(a.entityId, b.entityId);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function keyOf(key: EntityKey): string {
  return `${key.tenant}\u0000${key.entityType}\u0000${key.entityId}`;
}
