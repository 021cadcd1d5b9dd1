/** Where an entity's feed stands: its latest published version and that version's stream sequence. */
export interface FeedPosition {
  readonly version: number;
  readonly seq: number;
}

/**
 * What this worker last published per entity, bounded: a busy entity's next version can state
 * its expected predecessor without a database read. Evicted or missing entries only cost that read.
 */
export class FeedPositions {
  private readonly positions = new Map<string, FeedPosition>();

  constructor(private readonly capacity: number) {}

  get(key: string): FeedPosition | undefined {
    const position = this.positions.get(key);
    if (position) {
      // Re-inserting keeps the map in least-recently-used order.
      this.positions.delete(key);
      this.positions.set(key, position);
    }
    return position;
  }

  /** The stream sequence of the entity's `version`, if that is the last version this worker knows of. */
  seqOf(key: string, version: number): number | undefined {
    if (version === 0) return 0;
    const known = this.get(key);
    return known?.version === version ? known.seq : undefined;
  }

  advance(key: string, position: FeedPosition): void {
    const known = this.positions.get(key);
    if (known && known.version >= position.version) return;
    this.positions.delete(key);
    this.positions.set(key, position);
    if (this.positions.size > this.capacity) {
      const oldest = this.positions.keys().next().value;
      if (oldest !== undefined) this.positions.delete(oldest);
    }
  }

  forget(key: string): void {
    this.positions.delete(key);
  }
}
