import { applyMergePatch, diff, jsonEqual, stampChanges, withValuesAt } from '@syncline/delta';
import {
  VectorClocks,
  isJsonObject,
  type FieldChange,
  type JsonObject,
  type MutationMessage,
  type MutationStatus,
} from '@syncline/contracts';
import type { EntityState } from '../entities/entity-state.js';

/**
 * The document the client asks for, on top of the server's current state: the full document
 * for `upsert`, the current document with the merge patch applied for `patch` (so fields the
 * client did not touch keep the server's values under every strategy), `null` for `delete`.
 */
export function proposedDocument(current: EntityState, mutation: MutationMessage): JsonObject | null {
  switch (mutation.op) {
    case 'upsert':
      return mutation.data ?? {};
    case 'patch': {
      const patched = applyMergePatch(current.data ?? {}, mutation.data ?? {});
      return isJsonObject(patched) ? patched : {};
    }
    case 'delete':
      return null;
  }
}

/**
 * A mutation is concurrent with the server's state when it was made on an older version and
 * its vector clock does not show that its author had seen every change since. A client's own
 * quick succession of edits (each on the same base version, before the acks came back) is not
 * concurrent: its clock dominates the entity's.
 */
export function isConcurrent(
  current: Pick<EntityState, 'version' | 'vectorClock'>,
  mutation: MutationMessage,
): boolean {
  if (current.version === 0 || mutation.baseVersion === current.version) return false;
  return !VectorClocks.dominatesOrEquals(VectorClocks.fromRecord(mutation.vectorClock), current.vectorClock);
}

/** `applied` when the result is what the client proposed, `rejected` when nothing changed, else `merged`. */
export function statusOf(result: JsonObject | null, proposed: JsonObject | null, current: EntityState): MutationStatus {
  if (jsonEqual(result, proposed)) return 'applied';
  if (jsonEqual(result, currentDocument(current))) return 'rejected';
  return 'merged';
}

export function currentDocument(entity: EntityState): JsonObject | null {
  return entity.deleted || entity.version === 0 ? null : entity.data;
}

/** True when applying `result` leaves the entity exactly as it is: no new version is made. */
export function isNoOp(current: EntityState, result: JsonObject | null): boolean {
  if (current.version === 0) return false;
  return jsonEqual(result, currentDocument(current));
}

/** Field-level changes from the current document to the result, stamped with the change's HLC. */
export function fieldChanges(current: EntityState, result: JsonObject | null, hlc: string): FieldChange[] {
  return stampChanges(diff(currentDocument(current) ?? {}, result ?? {}), hlc);
}

/** Where a mutation was stored in MUTATIONS: which stream (its epoch) and at which sequence. */
export interface StreamPosition {
  readonly stream: string;
  readonly seq: number;
}

export function nextState(
  current: EntityState,
  result: JsonObject | null,
  mutation: MutationMessage,
  position: StreamPosition,
): EntityState {
  return {
    version: current.version + 1,
    data: result,
    deleted: result === null,
    vectorClock: VectorClocks.merge(current.vectorClock, VectorClocks.fromRecord(mutation.vectorClock)),
    hlc: current.hlc > mutation.hlc ? current.hlc : mutation.hlc,
    appliedStream: position.stream,
    // The highest applied: a late mutation applied after newer ones does not lower it.
    appliedSeq: current.appliedStream === position.stream ? Math.max(current.appliedSeq, position.seq) : position.seq,
  };
}

/** Whether a mutation reaches its entity after one stored later in MUTATIONS was applied to it. */
export function isLate(current: EntityState, position: StreamPosition): boolean {
  return current.appliedStream === position.stream && position.seq < current.appliedSeq;
}

/** What the mutations stored after a late one did to its entity. */
export interface LaterWrites {
  /** One of them replaced the whole document (an upsert or a delete). */
  readonly replaced: boolean;
  /** The fields (JSON Pointers) they changed. */
  readonly fields: ReadonlySet<string>;
  /** The clients that sent them. */
  readonly clients: ReadonlySet<string>;
  /**
   * The entity as the late mutation meets it in stream order: the version and vector clock of its
   * last change stored before it (version 0 when there is none). Whether the mutation is
   * concurrent is judged on this, not on later writes its author cannot have seen.
   */
  readonly before: Pick<EntityState, 'version' | 'vectorClock'>;
}

/**
 * A late mutation is concurrent when its base is older than the entity as stream order has it,
 * or when another client wrote the entity since: nobody could see the late mutation before it
 * was applied, so that client's write did not take it into account.
 */
export function isLateConcurrent(later: LaterWrites, mutation: MutationMessage): boolean {
  if (isConcurrent(later.before, mutation)) return true;
  for (const client of later.clients) if (client !== mutation.clientId) return true;
  return false;
}

/**
 * What stands of a late mutation: the document it proposes with every field that later mutations
 * wrote kept as they left it, which is what applying it in stream order, before them, gives (a
 * late delete leaves the fields they wrote since). `undefined` when nothing of it stands: a later
 * upsert or delete replaced the document, or later mutations wrote every field it changes.
 *
 * This is what keeps one entity's mutations in stream order whatever processes them when: a worker
 * that died holding a mutation (JetStream sends it again after its ack wait, behind newer ones),
 * or two workers each taking one of two mutations stored a moment apart.
 */
export function keptInStreamOrder(
  current: EntityState,
  proposed: JsonObject | null,
  later: LaterWrites,
): JsonObject | null | undefined {
  const document = currentDocument(current);
  if (later.replaced) return undefined;
  const kept = withValuesAt(proposed ?? {}, document ?? {}, later.fields);
  const result = isJsonObject(kept) ? kept : {};
  return jsonEqual(result, document) && !jsonEqual(proposed, document) ? undefined : result;
}
