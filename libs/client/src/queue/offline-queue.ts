import type { JsonObject } from '@syncline/contracts';
import type { KeyValueStorage } from '../storage/storage.js';
import { SerialWriter } from './serial-writer.js';

/**
 * A local change waiting to be confirmed by the server: the fields of a `mutate` payload (see the
 * protocol's `mutate`) plus when it was queued. `clientId` is always set here, since a queue
 * belongs to one client.
 */
export interface PendingMutation {
  readonly mutationId: string;
  readonly entityType: string;
  readonly entityId: string;
  readonly op: 'upsert' | 'patch' | 'delete';
  /** The full document (`upsert`) or the merge patch (`patch`); absent for `delete`. */
  readonly data?: JsonObject;
  readonly baseVersion: number;
  readonly vectorClock: Record<string, number>;
  readonly hlc: string;
  readonly clientId: string;
  /** Epoch ms when the change was queued. */
  readonly queuedAt: number;
}

/** Digits of the sequence in a queue key: zero-padded so lexicographic order is numeric order. */
const SEQUENCE_DIGITS = 16;
const SEQUENCE = new RegExp(`^\\d{${SEQUENCE_DIGITS}}$`);

interface QueuedEntry {
  readonly key: string;
  readonly mutation: PendingMutation;
}

/**
 * The persisted queue of local mutations not yet confirmed, in the order they were made (the
 * order they must be sent in). Each mutation is one storage entry under
 * `<namespace>/queue/<16-digit sequence>`: appending or removing one never rewrites the others,
 * and listing the keys gives back the order after a reload.
 *
 * Reads (`has`, `all`, `forEntity`, `size`) see every change at once; writes reach storage one
 * at a time in call order, and each method resolves when its own write has.
 */
export class OfflineQueue {
  /** By mutation id; a `Map` iterates in insertion order, which is sequence order. */
  private readonly entries = new Map<string, QueuedEntry>();
  private readonly writer = new SerialWriter();
  private snapshot: readonly PendingMutation[] | undefined;

  private constructor(
    private readonly storage: KeyValueStorage,
    private readonly prefix: string,
    private nextSequence: number,
  ) {}

  /** Loads the mutations persisted under `namespace`, in the order they were enqueued. */
  static async open(storage: KeyValueStorage, namespace: string): Promise<OfflineQueue> {
    const prefix = `${namespace}/queue/`;
    const keys = (await storage.keys(prefix)).filter((key) => SEQUENCE.test(key.slice(prefix.length)));
    const values = await Promise.all(keys.map((key) => storage.get<unknown>(key)));
    // Continue after the highest sequence still stored (even one whose value is unreadable), so
    // new mutations sort after every remaining one. A number freed by removing the newest entry
    // may be handed out again after a reload; order, the only thing sequences are for, holds.
    const last = keys.at(-1);
    const queue = new OfflineQueue(storage, prefix, last === undefined ? 0 : Number(last.slice(prefix.length)) + 1);
    keys.forEach((key, index) => queue.restore(key, values[index]));
    return queue;
  }

  get size(): number {
    return this.entries.size;
  }

  has(mutationId: string): boolean {
    return this.entries.has(mutationId);
  }

  /** The queued mutations, oldest first. */
  all(): readonly PendingMutation[] {
    this.snapshot ??= Object.freeze([...this.entries.values()].map((entry) => entry.mutation));
    return this.snapshot;
  }

  /** The queued mutations of one entity, oldest first. */
  forEntity(entityType: string, entityId: string): readonly PendingMutation[] {
    return this.all().filter((m) => m.entityType === entityType && m.entityId === entityId);
  }

  /**
   * Appends a mutation; resolves once it is persisted. A mutation id already queued is refused:
   * sending it twice would be harmless, but it means the caller reused an id by mistake. If the
   * write fails, the mutation leaves the queue again and the promise rejects.
   */
  enqueue(mutation: PendingMutation): Promise<void> {
    if (this.entries.has(mutation.mutationId)) {
      return Promise.reject(new Error(`mutation ${mutation.mutationId} is already queued`));
    }
    const entry: QueuedEntry = { key: this.keyOf(this.nextSequence), mutation };
    this.nextSequence += 1;
    this.add(entry);
    return this.writer
      .run(() => this.storage.set(entry.key, mutation))
      .catch((error: unknown) => {
        if (this.entries.get(mutation.mutationId) === entry) this.drop(mutation.mutationId);
        throw error;
      });
  }

  /**
   * Removes a mutation (confirmed, or refused for good); resolves to whether it was queued, once
   * the removal is persisted. Should that write fail, the mutation would come back after a reload
   * and be sent again, which its id makes harmless.
   */
  async remove(mutationId: string): Promise<boolean> {
    const entry = this.entries.get(mutationId);
    if (!entry) return false;
    this.drop(mutationId);
    await this.writer.run(() => this.storage.delete(entry.key));
    return true;
  }

  /** Empties the queue, including entries in storage it could not read. */
  async clear(): Promise<void> {
    this.entries.clear();
    this.snapshot = undefined;
    await this.writer.run(() => this.deleteAllPersisted());
  }

  private async deleteAllPersisted(): Promise<void> {
    for (const key of await this.storage.keys(this.prefix)) await this.storage.delete(key);
  }

  /** Takes back one persisted entry; a value that is not a mutation, or a repeated id, is skipped. */
  private restore(key: string, value: unknown): void {
    if (isPendingMutation(value) && !this.entries.has(value.mutationId)) this.add({ key, mutation: value });
  }

  private add(entry: QueuedEntry): void {
    this.entries.set(entry.mutation.mutationId, entry);
    this.snapshot = undefined;
  }

  private drop(mutationId: string): void {
    this.entries.delete(mutationId);
    this.snapshot = undefined;
  }

  private keyOf(sequence: number): string {
    return this.prefix + String(sequence).padStart(SEQUENCE_DIGITS, '0');
  }
}

/** Enough of a shape check to keep a damaged entry from breaking the client. */
function isPendingMutation(value: unknown): value is PendingMutation {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as Record<string, unknown>;
  return (
    typeof m['mutationId'] === 'string' &&
    typeof m['entityType'] === 'string' &&
    typeof m['entityId'] === 'string' &&
    (m['op'] === 'upsert' || m['op'] === 'patch' || m['op'] === 'delete')
  );
}
