import { applyDiff, applyMergePatch } from '@syncline/delta';
import { isJsonObject, type DeltaPayload, type JsonObject } from '@syncline/contracts';
import type { Frame } from './ws-client.js';

export interface ReplicaEntity {
  version: number;
  data: JsonObject | null;
}

export interface SentMutation {
  readonly mutationId: string;
  readonly entityId: string;
  readonly op: 'upsert' | 'patch' | 'delete';
  readonly data?: JsonObject;
}

/**
 * What a minimal client makes of the frames it received: deltas applied in version order, its
 * own mutations applied when acked `applied`, the server's document taken when `merged` or
 * `rejected`. Convergence means this equals the server's state.
 *
 * The feed must bring an entity's deltas in increasing versions. The author's own version comes
 * as an outcome ack on another path, and may arrive after the next delta: like the SDK, a delta
 * ahead of a missing version waits for it.
 */
export class Replica {
  readonly entities = new Map<string, ReplicaEntity>();
  private readonly lastDelta = new Map<string, number>();
  private readonly early = new Map<string, Map<number, DeltaPayload>>();

  constructor(private readonly sent: ReadonlyMap<string, SentMutation> = new Map()) {}

  static fromFrames(frames: readonly Frame[], entityType: string, sent: readonly SentMutation[] = []): Replica {
    const replica = new Replica(new Map(sent.map((m) => [m.mutationId, m])));
    for (const frame of frames) replica.take(frame, entityType);
    return replica;
  }

  take(frame: Frame, entityType: string): void {
    if (frame.type === 'delta' && frame.payload.entityType === entityType) this.applyDelta(frame.payload);
    if (frame.type === 'ack' && frame.payload.status !== 'accepted' && frame.payload.entityType === entityType) {
      const { payload } = frame;
      const current = this.entities.get(payload.entityId) ?? { version: 0, data: null };
      if (payload.version <= current.version) return;
      if (payload.status === 'applied') {
        const mutation = this.sent.get(payload.mutationId);
        if (!mutation) throw new Error(`ack for unknown mutation ${payload.mutationId}`);
        this.entities.set(payload.entityId, { version: payload.version, data: applyOwn(current.data, mutation) });
      } else {
        this.entities.set(payload.entityId, { version: payload.version, data: payload.data ?? null });
      }
      this.applyEarly(payload.entityId);
    }
  }

  private applyDelta(delta: DeltaPayload): void {
    const previous = this.lastDelta.get(delta.entityId) ?? 0;
    if (delta.version <= previous) {
      throw new Error(`delta ${delta.entityId} v${delta.version} after v${previous}: versions must arrive in order`);
    }
    this.lastDelta.set(delta.entityId, delta.version);
    const current = this.entities.get(delta.entityId) ?? { version: 0, data: null };
    if (delta.version > current.version + 1) {
      const waiting = this.early.get(delta.entityId) ?? new Map<number, DeltaPayload>();
      this.early.set(delta.entityId, waiting.set(delta.version, delta));
      return;
    }
    if (delta.version <= current.version) return;
    this.apply(delta, current);
    this.applyEarly(delta.entityId);
  }

  /** Applies the deltas that waited for a version now here. */
  private applyEarly(entityId: string): void {
    const waiting = this.early.get(entityId);
    for (;;) {
      const current = this.entities.get(entityId) ?? { version: 0, data: null };
      const next = waiting?.get(current.version + 1);
      if (!next) return;
      waiting!.delete(next.version);
      this.apply(next, current);
    }
  }

  private apply(delta: DeltaPayload, current: ReplicaEntity): void {
    const next = applyDiff(current.data ?? {}, delta.changes);
    this.entities.set(delta.entityId, { version: delta.version, data: delta.deleted ? null : (next as JsonObject) });
  }
}

function applyOwn(current: JsonObject | null, mutation: SentMutation): JsonObject | null {
  if (mutation.op === 'delete') return null;
  if (mutation.op === 'upsert') return mutation.data ?? {};
  const patched = applyMergePatch(current ?? {}, mutation.data ?? {});
  return isJsonObject(patched) ? patched : {};
}
