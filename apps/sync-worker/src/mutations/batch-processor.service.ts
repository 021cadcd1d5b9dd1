import { Injectable } from '@nestjs/common';
import { jsonEqual } from '@syncline/delta';
import { VectorClocks, type JsonObject, type MutationStatus } from '@syncline/contracts';
import { documentAtVersion, fieldHlcsSince } from '../conflicts/base-document.js';
import { ConflictResolver, type ResolvedConflict } from '../conflicts/conflict-resolver.js';
import type { ChangeRow } from '../entities/change-row.js';
import { entityKeyOf, keyOf, type EntityKey } from '../entities/entity-key.js';
import type { EntityChange, EntityState } from '../entities/entity-state.js';
import type { BatchWrites, ConflictRow, EntityWrite, ProcessedMutation } from './entity-store.repository.js';
import type { IncomingMutation, MutationOutcome } from './incoming-mutation.js';
import {
  currentDocument,
  fieldChanges,
  isConcurrent,
  isLate,
  isLateConcurrent,
  isNoOp,
  keptInStreamOrder,
  nextState,
  proposedDocument,
  statusOf,
  type LaterWrites,
  type StreamPosition,
} from './mutation-rules.js';

/** What a batch starts from. */
export interface BatchView {
  /** The state of every entity of the batch, by `keyOf`. */
  readonly states: ReadonlyMap<string, EntityState>;
  /** Ledger rows of mutation ids already processed (looked up for redelivered batches only). */
  readonly processed: readonly ProcessedMutation[];
  /** An entity's latest changes known without a read, oldest first, ending at its state's version. */
  readonly recent: (key: EntityKey) => readonly EntityChange[];
  /** An entity's logged changes after a version, oldest first, for the base of a conflict. */
  readonly logged: (key: EntityKey, afterVersion: number) => Promise<readonly EntityChange[]>;
  /** The epoch of the MUTATIONS stream the batch was taken from: stream sequences count within it. */
  readonly mutationStream: string;
  /** What the entity's mutations stored after `position` changed, for a mutation that arrives late. */
  readonly laterWrites: (key: EntityKey, position: StreamPosition) => Promise<LaterWrites>;
}

/**
 * The most changes read to rebuild a conflict's base document. A client further behind is merged
 * without a base, field by field (as when the log no longer holds its base version).
 */
export const MAX_BASE_CHANGES = 100;

/** A batch computed and ready to write, with what to do once it is committed. */
export interface BatchPlan {
  readonly writes: BatchWrites;
  readonly outcomes: MutationOutcome[];
  /** The versions it makes, in order per entity: what the outbox publishes. */
  readonly changes: ChangeRow[];
  /** Each entity the batch changes, by `keyOf`: its state once committed and the changes that make it. */
  readonly changed: Map<string, { readonly state: EntityState; readonly changes: EntityChange[] }>;
}

/**
 * Computes a batch: the mutations of one entity one after the other in stream order, each on the
 * state the previous one left, so its versions go 1, 2, 3 without gaps; different entities side
 * by side. Nothing here writes: the plan is committed in one statement, which checks that each
 * entity is still at the version the plan started from.
 */
@Injectable()
export class BatchProcessor {
  constructor(private readonly conflicts: ConflictResolver) {}

  async plan(batch: readonly IncomingMutation[], view: BatchView): Promise<BatchPlan> {
    const { fresh, repeats, repeatedInBatch } = splitRepeats(batch, view.processed);
    const writes = emptyWrites();
    const changes: ChangeRow[] = [];
    const outcomes: MutationOutcome[] = [];
    const changed = new Map<string, { state: EntityState; changes: EntityChange[] }>();
    await Promise.all(
      groupByEntity(fresh).map(async (group) => {
        const key = entityKeyOf((group[0] as IncomingMutation).mutation);
        const start = view.states.get(keyOf(key));
        if (!start) throw new Error(`no state loaded for ${keyOf(key)}`);
        const made: ChangeRow[] = [];
        const end = await this.applyToEntity(key, start, group, view, writes, made, outcomes);
        if (end !== start) {
          changed.set(keyOf(key), { state: end, changes: made });
          changes.push(...made);
          writes.changes.push(...made);
          writes.entities.push(entityWrite(key, start.version, end));
        }
      }),
    );
    outcomes.push(...repeats, ...answerRepeatsInBatch(repeatedInBatch, outcomes));
    return { writes, outcomes, changes, changed };
  }

  /**
   * Applies one entity's mutations in order, collecting the changes they make in `made`; returns
   * the state they leave (the same object if none changed it).
   */
  private async applyToEntity(
    key: EntityKey,
    start: EntityState,
    group: readonly IncomingMutation[],
    view: BatchView,
    writes: MutableWrites,
    made: ChangeRow[],
    outcomes: MutationOutcome[],
  ): Promise<EntityState> {
    let state = start;
    for (const item of group) {
      const { mutation } = item;
      const position = { stream: view.mutationStream, seq: item.streamSeq };
      const asked = proposedDocument(state, mutation);
      const later = isLate(state, position) ? await view.laterWrites(key, position) : undefined;
      const proposed = later ? keptInStreamOrder(state, asked, later) : asked;
      if (proposed === undefined) {
        writes.mutations.push({
          ...key,
          mutationId: mutation.mutationId,
          status: 'rejected',
          version: state.version,
          code: 'SUPERSEDED',
        });
        outcomes.push(supersededOutcome(item, state));
        continue;
      }
      let result = proposed;
      let conflict: ResolvedConflict | undefined;
      let base: JsonObject | null | undefined;
      if (later ? isLateConcurrent(later, mutation) : isConcurrent(state, mutation)) {
        const logged = await this.changesSince(key, mutation.baseVersion, state, view, made);
        base = documentAtVersion(currentDocument(state), state.version, mutation.baseVersion, logged);
        conflict = await this.conflicts.resolve(
          {
            tenant: mutation.tenant,
            entityType: mutation.entityType,
            base: base ?? null,
            server: {
              data: currentDocument(state),
              hlc: state.hlc,
              fieldHlcs: fieldHlcsSince(mutation.baseVersion, logged),
            },
            client: { data: proposed, hlc: mutation.hlc },
          },
          item.trace,
        );
        result = conflict.result;
      }
      // A late mutation that keeps fewer fields than it asked for is merged, never applied as asked.
      const status = mergedIfReduced(statusOf(result, proposed, state), proposed, asked);
      const before = state;
      if (status !== 'rejected' && !isNoOp(state, result)) {
        state = nextState(state, result, mutation, position);
        // Each field is stamped with the write that set it, which per-field last-write-wins compares.
        made.push(changeRow(item, position, status, state, fieldChanges(before, result, mutation.hlc)));
      }
      writes.mutations.push({ ...key, mutationId: mutation.mutationId, status, version: state.version, code: null });
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
    return state;
  }

  /**
   * The entity's changes after `baseVersion`, oldest first: from what the worker keeps of it and
   * this batch, or read from the log when those do not reach back that far. A client more than
   * {@link MAX_BASE_CHANGES} versions behind gets what is kept: its base is then unknown.
   */
  private async changesSince(
    key: EntityKey,
    baseVersion: number,
    state: EntityState,
    view: BatchView,
    made: readonly ChangeRow[],
  ): Promise<EntityChange[]> {
    const known = [...view.recent(key), ...made];
    const needed = state.version - baseVersion;
    const reachesBase = needed <= 0 || (known[0] !== undefined && known[0].version <= baseVersion + 1);
    if (reachesBase || needed > MAX_BASE_CHANGES) return known.filter((change) => change.version > baseVersion);
    const logged = await view.logged(key, baseVersion);
    return [...logged, ...made.filter((change) => change.version > baseVersion)];
  }
}

function supersededOutcome(item: IncomingMutation, state: EntityState): MutationOutcome {
  return {
    incoming: item,
    status: 'rejected',
    version: state.version,
    data: currentDocument(state),
    vectorClock: VectorClocks.toRecord(state.vectorClock),
    duplicate: false,
    code: 'SUPERSEDED',
    reason: 'mutations of this entity stored after this one, and applied before it, wrote everything it changes',
  };
}

function mergedIfReduced(
  status: MutationStatus,
  proposed: JsonObject | null,
  asked: JsonObject | null,
): MutationStatus {
  return status === 'applied' && !jsonEqual(proposed, asked) ? 'merged' : status;
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
      repeats.push({
        incoming: item,
        status: record.status,
        version: record.version,
        duplicate: true,
        ...(record.code === null ? {} : { code: record.code }),
      });
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

/** Groups by entity, each group in stream order. */
function groupByEntity(items: readonly IncomingMutation[]): IncomingMutation[][] {
  const groups = new Map<string, IncomingMutation[]>();
  for (const item of items) {
    const key = keyOf(item.mutation);
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return [...groups.values()].map((group) => group.sort((a, b) => a.streamSeq - b.streamSeq));
}

function changeRow(
  item: IncomingMutation,
  position: StreamPosition,
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
    mutationStream: position.stream,
    mutationSeq: position.seq,
  };
}

function conflictRow(
  item: IncomingMutation,
  conflict: ResolvedConflict,
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

function entityWrite(key: EntityKey, expectedVersion: number, state: EntityState): EntityWrite {
  return {
    ...key,
    expectedVersion,
    version: state.version,
    data: state.data,
    deleted: state.deleted,
    vectorClock: VectorClocks.toRecord(state.vectorClock),
    hlc: state.hlc,
    appliedStream: state.appliedStream,
    appliedSeq: state.appliedSeq,
  };
}
