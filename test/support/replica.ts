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
 */
export class Replica {
  readonly entities = new Map<string, ReplicaEntity>();

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
    }
  }

  private applyDelta(delta: DeltaPayload): void {
    const current = this.entities.get(delta.entityId) ?? { version: 0, data: null };
    if (delta.version !== current.version + 1) {
      throw new Error(
        `delta ${delta.entityId} v${delta.version} after v${current.version}: versions must arrive in order`,
      );
    }
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
