import type {
  ConflictStrategy,
  FieldChange,
  JsonObject,
  MutationOp,
  MutationStatus,
  VectorClockRecord,
} from '@syncline/contracts';
import { Table, column, nullable, type RowOf } from './table.js';

const entityKey = {
  tenant: column.text('tenant'),
  entityType: column.text('entity_type'),
  entityId: column.text('entity_id'),
};

/** Current state of each entity: the server of record. Version 0 until its first change commits. */
export const entitiesTable = new Table('entities', {
  ...entityKey,
  version: column.bigint('version'),
  data: nullable(column.jsonb<JsonObject>('data')),
  deleted: column.boolean('deleted'),
  vectorClock: column.jsonb<VectorClockRecord>('vector_clock'),
  hlc: column.text('hlc'),
  /** The highest stream sequence in MUTATIONS of the mutations applied to the entity. */
  appliedSeq: column.bigint('applied_seq'),
  /** Which MUTATIONS stream that sequence is of (its epoch): a stream created anew counts again. */
  appliedStream: column.text('applied_stream'),
  updatedAt: column.timestamptz('updated_at'),
});
export type EntitiesRow = RowOf<typeof entitiesTable.columns>;

/** The change log: one row per entity version, written once, with the version it makes. */
export const changesTable = new Table('changes', {
  id: column.bigint('id'),
  ...entityKey,
  version: column.bigint('version'),
  mutationId: column.text('mutation_id'),
  clientId: column.text('client_id'),
  op: column.text<MutationOp>('op'),
  status: column.text<MutationStatus>('status'),
  changes: column.jsonb<FieldChange[]>('changes'),
  deleted: column.boolean('deleted'),
  vectorClock: column.jsonb<VectorClockRecord>('vector_clock'),
  hlc: column.text('hlc'),
  traceparent: nullable(column.text('traceparent')),
  gatewayId: nullable(column.text('gateway_id')),
  connectionId: nullable(column.text('connection_id')),
  receivedAt: nullable(column.bigint('received_at')),
  /** Where in MUTATIONS the mutation that made this version was stored: its stream's epoch and sequence. */
  mutationStream: column.text('mutation_stream'),
  mutationSeq: column.bigint('mutation_seq'),
  createdAt: column.timestamptz('created_at'),
});
export type ChangesRow = RowOf<typeof changesTable.columns>;

/** The idempotency ledger: one row per processed mutation id, whatever became of it. */
export const mutationsTable = new Table('mutations', {
  tenant: column.text('tenant'),
  mutationId: column.text('mutation_id'),
  entityType: column.text('entity_type'),
  entityId: column.text('entity_id'),
  status: column.text<MutationStatus>('status'),
  /** The version the mutation produced, or the server's version when it was rejected. */
  version: column.bigint('version'),
  /** A stable code for why it was refused (`SUPERSEDED`), when one applies. */
  code: nullable(column.text<'SUPERSEDED'>('code')),
  createdAt: column.timestamptz('created_at'),
});
export type MutationsRow = RowOf<typeof mutationsTable.columns>;

/** Every resolved conflict, with both sides, the base and the result, for inspection. */
export const conflictsTable = new Table('conflicts', {
  id: column.bigint('id'),
  ...entityKey,
  mutationId: column.text('mutation_id'),
  strategy: column.text<ConflictStrategy>('strategy'),
  winner: column.text<'client' | 'server' | 'merged'>('winner'),
  baseVersion: column.bigint('base_version'),
  serverVersion: column.bigint('server_version'),
  resultVersion: column.bigint('result_version'),
  base: nullable(column.jsonb<JsonObject>('base')),
  serverData: nullable(column.jsonb<JsonObject>('server_data')),
  clientData: nullable(column.jsonb<JsonObject>('client_data')),
  result: nullable(column.jsonb<JsonObject>('result')),
  contested: column.jsonb<string[]>('contested'),
  serverHlc: column.text('server_hlc'),
  clientHlc: column.text('client_hlc'),
  createdAt: column.timestamptz('created_at'),
});
export type ConflictsRow = RowOf<typeof conflictsTable.columns>;

/** One row per committed batch whose changes are not all in CHANGES yet. */
export const outboxTable = new Table('outbox', {
  id: column.bigint('id'),
  changeIds: column.bigintArray('change_ids'),
  createdAt: column.timestamptz('created_at'),
});
export type OutboxRow = RowOf<typeof outboxTable.columns>;

/** Where each published change is in CHANGES: an entity type's stream sequence → entity version. */
export const changePositionsTable = new Table('change_positions', {
  tenant: column.text('tenant'),
  entityType: column.text('entity_type'),
  seq: column.bigint('seq'),
  entityId: column.text('entity_id'),
  version: column.bigint('version'),
});
export type ChangePositionsRow = RowOf<typeof changePositionsTable.columns>;
