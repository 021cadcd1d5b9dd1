import { applyMergePatch, diff, jsonEqual, stampChanges } from '@syncline/delta';
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
export function isConcurrent(current: EntityState, mutation: MutationMessage): boolean {
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

export function nextState(current: EntityState, result: JsonObject | null, mutation: MutationMessage): EntityState {
  return {
    version: current.version + 1,
    data: result,
    deleted: result === null,
    vectorClock: VectorClocks.merge(current.vectorClock, VectorClocks.fromRecord(mutation.vectorClock)),
    hlc: current.hlc > mutation.hlc ? current.hlc : mutation.hlc,
  };
}
