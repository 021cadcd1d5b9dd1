import type { EntityChange, EntityState } from './entity-state.js';

/** What the worker keeps of an entity. */
export interface CachedEntity {
  readonly state: EntityState;
  /** Its latest changes, oldest first, ending at `state.version` (empty when not known). */
  readonly recent: readonly EntityChange[];
}

/** Changes kept per entity: enough for the base of a conflict with a client a few versions behind. */
export const RECENT_CHANGES_KEPT = 32;

/**
 * The committed state this worker last wrote or read for each entity, so a batch of entities it
 * already knows costs one statement: the write, which checks that each entity row still has the
 * version the batch was computed on. Another worker's write makes that check fail; the batch is
 * then computed again on fresh reads. A stale entry costs a retry, never a wrong result.
 */
export class EntityCache {
  /** In least-recently-used order: the first key is evicted first. */
  private readonly entries = new Map<string, CachedEntity>();

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string): CachedEntity | undefined {
    const entry = this.entries.get(key);
    if (entry !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, entry);
    }
    return entry;
  }

  /** Keeps a state read from the database (its recent changes unknown). */
  loaded(key: string, state: EntityState): void {
    this.put(key, { state, recent: [] });
  }

  /** Keeps the state a committed batch left, with the changes that made it. */
  committed(key: string, state: EntityState, changes: readonly EntityChange[]): void {
    const previous = this.entries.get(key);
    const continues = previous && previous.state.version === (changes[0]?.version ?? state.version + 1) - 1;
    const recent = [...(continues ? previous.recent : []), ...changes];
    this.put(key, { state, recent: recent.slice(-RECENT_CHANGES_KEPT) });
  }

  /** Forgets entities whose cached state may be wrong. */
  invalidate(keys: Iterable<string>): void {
    for (const key of keys) this.entries.delete(key);
  }

  private put(key: string, entry: CachedEntity): void {
    this.entries.delete(key);
    if (this.capacity === 0) return;
    this.entries.set(key, entry);
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }
}
