import { Injectable } from '@nestjs/common';
import { VectorClocks, type ConflictResponse, type JsonObject } from '@syncline/contracts';
import { documentAtVersion, fieldHlcsSince } from '../conflicts/base-document.js';
import { ConflictClient } from '../conflicts/conflict.client.js';
import {
  EntityStoreRepository,
  keyOf,
  type BatchWrites,
  type ChangeRow,
  type ConflictRow,
  type EntityKey,
  type EntityRow,
  type LockedEntity,
  type ProcessedMutation,
  type StoreTransaction,
} from './entity-store.repository.js';
import type { IncomingMutation, MutationOutcome } from './incoming-mutation.js';
import {
  currentDocument,
  fieldChanges,
  isConcurrent,
  isNoOp,
  nextState,
  proposedDocument,
  statusOf,
  type EntityState,
} from './mutation-rules.js';

/** A committed change the publisher must bring to CHANGES, with what was known of its entity's feed. */
export interface CommittedChange {
  readonly row: ChangeRow;
  /** The entity's version when the batch locked it, and that version's CHANGES sequence if recorded. */
  readonly previous: { readonly version: number; readonly seq: number | undefined };
}

export interface BatchResult {
  readonly outcomes: MutationOutcome[];
  readonly committed: CommittedChange[];
}

/**
 * Applies a batch of mutations in one transaction. Mutations of one entity run one after the
 * other in stream order while its row is locked, so its versions go 1, 2, 3 without gaps even
 * with several workers; different entities of the batch proceed side by side.
 */
@Injectable()
export class BatchProcessor {
  constructor(
    private readonly store: EntityStoreRepository,
    private readonly conflicts: ConflictClient,
  ) {}

  /**
   * `checkLedger` looks every mutation id up in the ledger first. A first delivery can skip it:
   * JetStream already dropped resends within its duplicate window, and a later resend makes the
   * ledger's primary key refuse the batch, which is then retried with the check.
   */
  process(batch: readonly IncomingMutation[], options: { checkLedger: boolean }): Promise<BatchResult> {
    return this.store.transaction(async (tx) => {
      const { processed, locked } = await tx.start(
        uniqueKeys(batch),
        options.checkLedger ? batch.map((item) => item.mutation) : [],
      );
      const { fresh, repeats, repeatedInBatch } = splitRepeats(batch, processed);
      const lockedByKey = new Map(locked.map((entity) => [keyOf(entity.key), entity]));
      const writes = emptyWrites();
      const committed: CommittedChange[] = [];
      const outcomes: MutationOutcome[] = [];
      await Promise.all(
        groupByEntity(fresh).map(async (group) => {
          const entity = lockedByKey.get(keyOf(entityKeyOf(group[0] as IncomingMutation)));
          if (!entity) throw new Error('entity row was not locked');
          await this.applyToEntity(tx, entity, group, writes, committed, outcomes);
        }),
      );
      await tx.commit(writes);
      outcomes.push(...repeats, ...answerRepeatsInBatch(repeatedInBatch, outcomes));
      return { outcomes, committed };
    });
  }

  private async applyToEntity(
    tx: StoreTransaction,
    locked: LockedEntity,
    group: readonly IncomingMutation[],
    writes: MutableWrites,
    committed: CommittedChange[],
    outcomes: MutationOutcome[],
  ): Promise<void> {
    let state: EntityState = locked;
    let changed = false;
    for (const item of group) {
      const { mutation } = item;
      const proposed = proposedDocument(state, mutation);
      let result = proposed;
      let conflict: ConflictResponse | undefined;
      let base: JsonObject | null | undefined;
      if (isConcurrent(state, mutation)) {
        // This batch's earlier changes of the entity are not in the log yet: they count too.
        const logged = [
          ...(await tx.changesAfter(locked.key, mutation.baseVersion)),
          ...writes.changes.filter((row) => keyOf(row) === keyOf(locked.key) && row.version > mutation.baseVersion),
        ];
        base = documentAtVersion(currentDocument(state), state.version, mutation.baseVersion, logged);
        conflict = await this.conflicts.resolve(
          {
            tenant: mutation.tenant,
            entityType: mutation.entityType,
            entityId: mutation.entityId,
            base: base ?? null,
            server: {
              version: state.version,
              data: currentDocument(state),
              vectorClock: VectorClocks.toRecord(state.vectorClock),
              hlc: state.hlc,
              fieldHlcs: fieldHlcsSince(mutation.baseVersion, logged),
            },
            client: {
              data: proposed,
              vectorClock: mutation.vectorClock,
              hlc: mutation.hlc,
              clientId: mutation.clientId,
              mutationId: mutation.mutationId,
            },
          },
          item.trace,
        );
        result = conflict.result;
      }
      const status = statusOf(result, proposed, state);
      const before = state;
      if (status !== 'rejected' && !isNoOp(state, result)) {
        state = nextState(state, result, mutation);
        changed = true;
        // Each field is stamped with the write that set it, which per-field last-write-wins compares.
        writes.changes.push(changeRow(item, status, state, fieldChanges(before, result, mutation.hlc)));
        committed.push({
          row: writes.changes[writes.changes.length - 1] as ChangeRow,
          previous: { version: locked.version, seq: locked.currentSeq },
        });
      }
      writes.mutations.push({ ...locked.key, mutationId: mutation.mutationId, status, version: state.version });
      if (conflict) writes.conflicts.push(conflictRow(item, conflict, base ?? null, before, proposed, state.version));
      outcomes.push({
        incoming: item,
        status,
        version: state.version,
        ...(status === 'applied' ? {} : { data: currentDocument(state) }),
        vectorClock: VectorClocks.toRecord(state.vectorClock),
        duplicate: false,
        ...(conflict ? { strategy: conflict.strategy } : {}),
      });
    }
    if (changed) writes.entities.push(entityRow(locked.key, state));
  }
}

function answerRepeatsInBatch(
  repeated: readonly IncomingMutation[],
  outcomes: readonly MutationOutcome[],
): MutationOutcome[] {
  return repeated.flatMap((item) => {
    const first = outcomes.find(
      (outcome) =>
        outcome.incoming.mutation.mutationId === item.mutation.mutationId &&
        outcome.incoming.mutation.tenant === item.mutation.tenant,
    );
    return first ? [{ ...first, incoming: item, duplicate: true }] : [];
  });
}

/** Mutation ids already in the ledger, or repeated within the batch, are answered from the record. */
function splitRepeats(
  batch: readonly IncomingMutation[],
  processed: readonly ProcessedMutation[],
): { fresh: IncomingMutation[]; repeats: MutationOutcome[]; repeatedInBatch: IncomingMutation[] } {
  const recorded = new Map<string, ProcessedMutation>(processed.map((p) => [`${p.tenant}\u0000${p.mutationId}`, p]));
  const seen = new Set<string>();
  const fresh: IncomingMutation[] = [];
  const repeats: MutationOutcome[] = [];
  const repeatedInBatch: IncomingMutation[] = [];
  for (const item of batch) {
    const id = `${item.mutation.tenant}\u0000${item.mutation.mutationId}`;
    const record = recorded.get(id);
    if (record) {
      repeats.push({ incoming: item, status: record.status, version: record.version, duplicate: true });
    } else if (seen.has(id)) {
      // Its first copy in this batch has no ledger row yet: it gets the first copy's outcome.
      repeatedInBatch.push(item);
    } else {
      seen.add(id);
      fresh.push(item);
    }
  }
  return { fresh, repeats, repeatedInBatch };
}

type MutableWrites = { [K in keyof BatchWrites]: BatchWrites[K] extends readonly (infer T)[] ? T[] : never };

function emptyWrites(): MutableWrites {
  return { changes: [], mutations: [], conflicts: [], entities: [] };
}

function entityKeyOf(item: IncomingMutation): EntityKey {
  return { tenant: item.mutation.tenant, entityType: item.mutation.entityType, entityId: item.mutation.entityId };
}

function uniqueKeys(items: readonly IncomingMutation[]): EntityKey[] {
  const keys = new Map<string, EntityKey>();
  for (const item of items) {
    const key = entityKeyOf(item);
    keys.set(keyOf(key), key);
  }
  return [...keys.values()];
}

/** Groups by entity, keeping stream order inside each group. */
function groupByEntity(items: readonly IncomingMutation[]): IncomingMutation[][] {
  const groups = new Map<string, IncomingMutation[]>();
  for (const item of items) {
    const key = keyOf(entityKeyOf(item));
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return [...groups.values()];
}

function changeRow(
  item: IncomingMutation,
  status: ChangeRow['status'],
  state: EntityState,
  changes: ChangeRow['changes'],
): ChangeRow {
  const { mutation } = item;
  return {
    tenant: mutation.tenant,
    entityType: mutation.entityType,
    entityId: mutation.entityId,
    version: state.version,
    mutationId: mutation.mutationId,
    clientId: mutation.clientId,
    op: mutation.op,
    status,
    changes,
    deleted: state.deleted,
    vectorClock: VectorClocks.toRecord(state.vectorClock),
    hlc: state.hlc,
    traceparent: item.traceparent,
    gatewayId: item.gatewayId,
    connectionId: item.connectionId,
    receivedAt: item.receivedAt,
  };
}

function conflictRow(
  item: IncomingMutation,
  conflict: ConflictResponse,
  base: JsonObject | null,
  server: EntityState,
  proposed: JsonObject | null,
  resultVersion: number,
): ConflictRow {
  const { mutation } = item;
  return {
    tenant: mutation.tenant,
    entityType: mutation.entityType,
    entityId: mutation.entityId,
    mutationId: mutation.mutationId,
    strategy: conflict.strategy,
    winner: conflict.winner,
    baseVersion: mutation.baseVersion,
    serverVersion: server.version,
    resultVersion,
    base,
    serverData: currentDocument(server),
    clientData: proposed,
    result: conflict.result,
    contested: conflict.contested,
    serverHlc: server.hlc,
    clientHlc: mutation.hlc,
  };
}

function entityRow(key: EntityKey, state: EntityState): EntityRow {
  return {
    ...key,
    version: state.version,
    data: state.data,
    deleted: state.deleted,
    vectorClock: VectorClocks.toRecord(state.vectorClock),
    hlc: state.hlc,
  };
}
