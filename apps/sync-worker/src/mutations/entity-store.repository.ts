import { Inject, Injectable } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import {
  VectorClocks,
  type FieldChange,
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
  readonly changes: readonly FieldChange[];
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

/** What a batch's transaction starts from: the ledger rows it asked for and its locked entities. */
export interface BatchStart {
  readonly processed: ProcessedMutation[];
  readonly locked: LockedEntity[];
}

/** A transaction of the store, begun by `start` and ended by `commit` (or rolled back on failure). */
export interface StoreTransaction {
  /**
   * Begins the transaction, looks the given mutation ids up in the ledger, and creates missing
   * entity rows and locks all of them: one round trip.
   */
  start(keys: readonly EntityKey[], ledger: readonly { tenant: string; mutationId: string }[]): Promise<BatchStart>;
  changesAfter(key: EntityKey, version: number): Promise<{ version: number; changes: FieldChange[] }[]>;
  /** Writes the batch and commits: one round trip. */
  commit(writes: BatchWrites): Promise<void>;
}

/** The part of a `pg` client the store uses. */
interface PgClient {
  query(text: string, values?: unknown[]): Promise<PgResult | PgResult[]>;
  escapeLiteral(value: string): string;
}

interface PgResult {
  readonly rows: Array<Record<string, unknown>>;
}

/**
 * The worker's only access to PostgreSQL for mutations. Every statement handles a whole batch,
 * and a batch costs two round trips: begin + ledger + lock, then write + commit. They are sent as
 * multi-statement text (the simple query protocol), values quoted by the driver, because
 * parameters would force one round trip per statement; on a machine where every hop of a
 * mutation competes for the same cores, round trips are what latency is made of.
 */
@Injectable()
export class EntityStoreRepository {
  constructor(@Inject(DATA_SOURCE) private readonly dataSource: DataSource) {}

  async transaction<T>(work: (tx: StoreTransaction) => Promise<T>): Promise<T> {
    const runner = this.dataSource.createQueryRunner();
    const client = (await runner.connect()) as PgClient;
    const tx = new SqlStoreTransaction(client);
    try {
      return await work(tx);
    } catch (error) {
      if (tx.open) await tx.rollback().catch(() => undefined);
      throw error;
    } finally {
      await runner.release();
    }
  }
}

class SqlStoreTransaction implements StoreTransaction {
  open = false;
  /**
   * The entities of a batch are worked on side by side, but one connection runs one query at a
   * time: pg would queue overlapping ones itself, yet deprecates doing so, so they queue here.
   */
  private previous: Promise<unknown> = Promise.resolve();

  constructor(private readonly client: PgClient) {}

  async start(
    keys: readonly EntityKey[],
    ledger: readonly { tenant: string; mutationId: string }[],
  ): Promise<BatchStart> {
    this.open = true;
    const statements = ['BEGIN'];
    if (ledger.length > 0) statements.push(this.ledgerQuery(ledger));
    statements.push(this.lockQuery(keys));
    const results = await this.query(statements.join(';\n'));
    const list = Array.isArray(results) ? results : [results];
    const lockRows = list[list.length - 1]?.rows ?? [];
    const ledgerRows = ledger.length > 0 ? (list[1]?.rows ?? []) : [];
    return { processed: ledgerRows.map(toProcessed), locked: lockRows.map(toLocked) };
  }

  async changesAfter(key: EntityKey, version: number): Promise<{ version: number; changes: FieldChange[] }[]> {
    const result = (await this.query(
      `SELECT version, changes FROM changes
        WHERE tenant = $1 AND entity_type = $2 AND entity_id = $3 AND version > $4
        ORDER BY version`,
      [key.tenant, key.entityType, key.entityId, version],
    )) as PgResult;
    return result.rows.map((row) => ({ version: Number(row['version']), changes: row['changes'] as FieldChange[] }));
  }

  async commit(writes: BatchWrites): Promise<void> {
    const statements = writes.mutations.length > 0 ? [this.writeQuery(writes), 'COMMIT'] : ['COMMIT'];
    await this.query(statements.join(';\n'));
    this.open = false;
  }

  /** Queued behind queries still running for the batch's other entities. */
  async rollback(): Promise<void> {
    await this.query('ROLLBACK');
    this.open = false;
  }

  private query(text: string, values?: unknown[]): Promise<PgResult | PgResult[]> {
    const result = this.previous.then(() => this.client.query(text, values));
    this.previous = result.catch(() => undefined);
    return result;
  }

  private ledgerQuery(ledger: readonly { tenant: string; mutationId: string }[]): string {
    return `SELECT m.tenant, m.mutation_id, m.entity_type, m.entity_id, m.status, m.version
              FROM mutations m
              JOIN unnest(${this.textArray(ledger.map((l) => l.tenant))}, ${this.textArray(ledger.map((l) => l.mutationId))})
                AS k(tenant, mutation_id)
                ON m.tenant = k.tenant AND m.mutation_id = k.mutation_id`;
  }

  /**
   * Creates missing entity rows and locks all of them. `ON CONFLICT DO UPDATE` takes the row
   * lock of an existing row and returns it; keys are sorted so two workers always lock in the
   * same order and cannot deadlock each other. The current version's stream sequence comes
   * from its change-log row.
   */
  private lockQuery(keys: readonly EntityKey[]): string {
    const sorted = [...keys].sort(compareKeys);
    return `WITH locked AS (
              INSERT INTO entities AS e (tenant, entity_type, entity_id)
              SELECT k.tenant, k.entity_type, k.entity_id
                FROM unnest(${this.textArray(sorted.map((k) => k.tenant))}, ${this.textArray(sorted.map((k) => k.entityType))},
                            ${this.textArray(sorted.map((k) => k.entityId))}) WITH ORDINALITY AS k(tenant, entity_type, entity_id, n)
               ORDER BY k.n
              ON CONFLICT (tenant, entity_type, entity_id) DO UPDATE SET version = e.version
              RETURNING tenant, entity_type, entity_id, version, data, deleted, vector_clock, hlc
            )
            SELECT l.*, CASE WHEN l.version = 0 THEN 0 ELSE c.seq END AS current_seq
              FROM locked l
              LEFT JOIN changes c
                ON c.tenant = l.tenant AND c.entity_type = l.entity_type AND c.entity_id = l.entity_id
               AND c.version = l.version`;
  }

  /** All writes of a batch in one statement: change log, ledger, conflicts and entity rows. */
  private writeQuery(writes: BatchWrites): string {
    const json = (rows: readonly object[]) => `${this.client.escapeLiteral(JSON.stringify(rows))}::jsonb`;
    return `WITH new_changes AS (
         INSERT INTO changes (tenant, entity_type, entity_id, version, mutation_id, client_id, op, status, changes,
                              deleted, vector_clock, hlc, traceparent, gateway_id, connection_id, received_at)
         SELECT "tenant", "entityType", "entityId", "version", "mutationId", "clientId", "op", "status", "changes",
                "deleted", "vectorClock", "hlc", "traceparent", "gatewayId", "connectionId", "receivedAt"
           FROM jsonb_to_recordset(${json(writes.changes)}) AS x("tenant" text, "entityType" text, "entityId" text,
                "version" bigint, "mutationId" text, "clientId" text, "op" text, "status" text, "changes" jsonb,
                "deleted" boolean, "vectorClock" jsonb, "hlc" text, "traceparent" text, "gatewayId" text,
                "connectionId" text, "receivedAt" bigint)
       ), new_mutations AS (
         INSERT INTO mutations (tenant, mutation_id, entity_type, entity_id, status, version)
         SELECT "tenant", "mutationId", "entityType", "entityId", "status", "version"
           FROM jsonb_to_recordset(${json(writes.mutations)}) AS x("tenant" text, "mutationId" text, "entityType" text,
                "entityId" text, "status" text, "version" bigint)
       ), new_conflicts AS (
         INSERT INTO conflicts (tenant, entity_type, entity_id, mutation_id, strategy, winner, base_version, server_version,
                                result_version, base, server_data, client_data, result, contested, server_hlc, client_hlc)
         SELECT "tenant", "entityType", "entityId", "mutationId", "strategy", "winner", "baseVersion", "serverVersion",
                "resultVersion", "base", "serverData", "clientData", "result", "contested", "serverHlc", "clientHlc"
           FROM jsonb_to_recordset(${json(writes.conflicts)}) AS x("tenant" text, "entityType" text, "entityId" text,
                "mutationId" text, "strategy" text, "winner" text, "baseVersion" bigint, "serverVersion" bigint,
                "resultVersion" bigint, "base" jsonb, "serverData" jsonb, "clientData" jsonb, "result" jsonb,
                "contested" jsonb, "serverHlc" text, "clientHlc" text)
       )
       UPDATE entities e
          SET version = x."version", data = x."data", deleted = x."deleted", vector_clock = x."vectorClock",
              hlc = x."hlc", updated_at = now()
         FROM jsonb_to_recordset(${json(writes.entities)}) AS x("tenant" text, "entityType" text, "entityId" text,
              "version" bigint, "data" jsonb, "deleted" boolean, "vectorClock" jsonb, "hlc" text)
        WHERE e.tenant = x."tenant" AND e.entity_type = x."entityType" AND e.entity_id = x."entityId"`;
  }

  private textArray(values: readonly string[]): string {
    return values.length === 0
      ? `'{}'::text[]`
      : `ARRAY[${values.map((v) => this.client.escapeLiteral(v)).join(',')}]::text[]`;
  }
}

function toProcessed(row: Record<string, unknown>): ProcessedMutation {
  return {
    tenant: row['tenant'] as string,
    mutationId: row['mutation_id'] as string,
    entityType: row['entity_type'] as string,
    entityId: row['entity_id'] as string,
    status: row['status'] as MutationStatus,
    version: Number(row['version']),
  };
}

function toLocked(row: Record<string, unknown>): LockedEntity {
  return {
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
  };
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
