import { applyDiff, applyMergePatch } from '@syncline/delta';
import {
  VectorClocks,
  isJsonObject,
  type DeltaPayload,
  type JsonObject,
  type VectorClockRecord,
} from '@syncline/contracts';
import type { PendingMutation } from '../queue/offline-queue.js';

/** What the server has confirmed of one entity. `data` is null for a deleted or unknown entity. */
export interface ConfirmedEntity {
  readonly version: number;
  readonly data: JsonObject | null;
  readonly vectorClock: VectorClockRecord;
}

export type DeltaResult = 'applied' | 'duplicate' | 'gap';

const ABSENT: ConfirmedEntity = { version: 0, data: null, vectorClock: {} };

/**
 * The client's copy of one entity type: the confirmed state from the server (versions applied
 * strictly in order), and the optimistic view, which is the confirmed state with the pending
 * mutations replayed on top in the order they were made. Rebasing onto a newer server state and
 * rolling back a refused mutation are both "recompute the view".
 */
export class EntityStore {
  private readonly confirmed = new Map<string, ConfirmedEntity>();
  /**
   * Versions that arrived ahead of a missing one, by entity then version: others' deltas, and
   * this client's own mutations acknowledged as applied (which the server computed exactly as
   * the mutation applied to the version before).
   */
  private readonly early = new Map<string, Map<number, EarlyVersion>>();

  constructor(readonly entityType: string) {}

  get(entityId: string): ConfirmedEntity {
    return this.confirmed.get(entityId) ?? ABSENT;
  }

  entries(): IterableIterator<[string, ConfirmedEntity]> {
    return this.confirmed.entries();
  }

  /** Replaces everything known of an entity (a snapshot, or a merged / rejected ack). */
  replace(entityId: string, entity: ConfirmedEntity): void {
    if (entity.version < this.get(entityId).version) return;
    this.confirmed.set(entityId, entity);
    this.drainEarly(entityId);
  }

  /** Applies a change in version order; a change ahead of a missing one waits for it. */
  applyDelta(delta: DeltaPayload): DeltaResult {
    const current = this.get(delta.entityId);
    if (delta.version <= current.version) return 'duplicate';
    if (delta.version > current.version + 1) {
      this.holdEarly(delta.entityId, delta.version, { delta });
      return 'gap';
    }
    this.confirmed.set(delta.entityId, afterDelta(current, delta));
    this.drainEarly(delta.entityId);
    return 'applied';
  }

  /** Applies the author's own mutation once the server says it became `version` unchanged. */
  applyOwn(mutation: PendingMutation, version: number, vectorClock: VectorClockRecord | undefined): DeltaResult {
    const current = this.get(mutation.entityId);
    if (version <= current.version) return 'duplicate';
    if (version > current.version + 1) {
      this.holdEarly(mutation.entityId, version, { own: mutation, vectorClock });
      return 'gap';
    }
    this.confirmed.set(mutation.entityId, afterOwn(current, { own: mutation, vectorClock }, version));
    this.drainEarly(mutation.entityId);
    return 'applied';
  }

  /** Entities with changes waiting for a version that has not arrived. */
  gaps(): string[] {
    return [...this.early.keys()];
  }

  /** The optimistic view: confirmed state plus pending mutations, deleted entities left out. */
  view(pending: readonly PendingMutation[]): Record<string, JsonObject> {
    const documents = new Map<string, JsonObject | null>();
    for (const [entityId, entity] of this.confirmed) documents.set(entityId, entity.data);
    for (const mutation of pending) {
      if (mutation.entityType !== this.entityType) continue;
      documents.set(mutation.entityId, applyMutation(documents.get(mutation.entityId) ?? null, mutation));
    }
    const view: Record<string, JsonObject> = {};
    for (const [entityId, data] of documents) if (data) view[entityId] = data;
    return view;
  }

  /** The document of one entity in the optimistic view. */
  viewOf(entityId: string, pending: readonly PendingMutation[]): JsonObject | null {
    let data = this.get(entityId).data;
    for (const mutation of pending) {
      if (mutation.entityType === this.entityType && mutation.entityId === entityId)
        data = applyMutation(data, mutation);
    }
    return data;
  }

  private holdEarly(entityId: string, version: number, early: EarlyVersion): void {
    const waiting = this.early.get(entityId) ?? new Map<number, EarlyVersion>();
    waiting.set(version, early);
    this.early.set(entityId, waiting);
  }

  private drainEarly(entityId: string): void {
    const waiting = this.early.get(entityId);
    if (!waiting) return;
    for (;;) {
      const current = this.get(entityId);
      for (const version of waiting.keys()) if (version <= current.version) waiting.delete(version);
      const version = current.version + 1;
      const next = waiting.get(version);
      if (!next) break;
      waiting.delete(version);
      this.confirmed.set(
        entityId,
        'delta' in next ? afterDelta(current, next.delta) : afterOwn(current, next, version),
      );
    }
    if (waiting.size === 0) this.early.delete(entityId);
  }
}

type EarlyVersion =
  | { readonly delta: DeltaPayload }
  | { readonly own: PendingMutation; readonly vectorClock: VectorClockRecord | undefined };

function afterOwn(
  current: ConfirmedEntity,
  early: { readonly own: PendingMutation; readonly vectorClock: VectorClockRecord | undefined },
  version: number,
): ConfirmedEntity {
  const merged = VectorClocks.merge(
    VectorClocks.fromRecord(current.vectorClock),
    VectorClocks.fromRecord(early.own.vectorClock),
  );
  return {
    version,
    data: applyMutation(current.data, early.own),
    vectorClock: early.vectorClock ?? VectorClocks.toRecord(merged),
  };
}

function afterDelta(current: ConfirmedEntity, delta: DeltaPayload): ConfirmedEntity {
  const data = delta.deleted ? null : applyDiff(current.data ?? {}, delta.changes);
  return { version: delta.version, data: isJsonObject(data) ? data : null, vectorClock: delta.vectorClock };
}

/** A mutation's effect on a document, as the server applies it (null: deleted). */
export function applyMutation(current: JsonObject | null, mutation: PendingMutation): JsonObject | null {
  switch (mutation.op) {
    case 'delete':
      return null;
    case 'upsert':
      return mutation.data ?? {};
    case 'patch': {
      const patched = applyMergePatch(current ?? {}, mutation.data ?? {});
      return isJsonObject(patched) ? patched : {};
    }
  }
}
