/**
 * A vector clock: for each node (client or server id), how many of its events are known.
 * In memory it is a `Map`; on the wire and in PostgreSQL a plain record.
 */
export type VectorClock = ReadonlyMap<string, number>;
export type VectorClockRecord = Readonly<Record<string, number>>;

export type ClockOrder = 'before' | 'after' | 'equal' | 'concurrent';

export const VectorClocks = {
  empty(): VectorClock {
    return new Map();
  },

  fromRecord(record: VectorClockRecord): VectorClock {
    return new Map(Object.entries(record).filter(([, count]) => count > 0));
  },

  /** Keys sorted, so the same clock always serializes to the same JSON. */
  toRecord(clock: VectorClock): Record<string, number> {
    const record: Record<string, number> = {};
    for (const node of [...clock.keys()].sort()) {
      const count = clock.get(node) ?? 0;
      if (count > 0) record[node] = count;
    }
    return record;
  },

  increment(clock: VectorClock, node: string): VectorClock {
    const next = new Map(clock);
    next.set(node, (clock.get(node) ?? 0) + 1);
    return next;
  },

  merge(a: VectorClock, b: VectorClock): VectorClock {
    const merged = new Map(a);
    for (const [node, count] of b) merged.set(node, Math.max(count, merged.get(node) ?? 0));
    return merged;
  },

  /** How `a` relates to `b`: `before` means every event of `a` is known to `b`, and `b` knows more. */
  compare(a: VectorClock, b: VectorClock): ClockOrder {
    let aAhead = false;
    let bAhead = false;
    for (const node of new Set([...a.keys(), ...b.keys()])) {
      const left = a.get(node) ?? 0;
      const right = b.get(node) ?? 0;
      if (left > right) aAhead = true;
      if (right > left) bAhead = true;
      if (aAhead && bAhead) return 'concurrent';
    }
    if (aAhead) return 'after';
    if (bAhead) return 'before';
    return 'equal';
  },

  /** True when `a` has seen every event `b` has seen. */
  dominatesOrEquals(a: VectorClock, b: VectorClock): boolean {
    const order = VectorClocks.compare(a, b);
    return order === 'after' || order === 'equal';
  },
};
