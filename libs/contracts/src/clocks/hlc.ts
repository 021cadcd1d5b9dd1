/**
 * Hybrid logical clock timestamps: physical milliseconds, a logical counter for events in the
 * same millisecond (or when the wall clock lags), and the node that made it.
 *
 * Serialized as `<wall ms, 15 digits>:<counter, 5 digits>:<node>` so that string order is
 * time order and ties fall to the node id: last-write-wins needs nothing but `<`.
 */
export interface HlcTimestamp {
  readonly wallMs: number;
  readonly counter: number;
  readonly node: string;
}

export const HLC_PATTERN = /^(\d{15}):(\d{5}):([A-Za-z0-9_.:-]{1,128})$/;
const MAX_COUNTER = 99_999;

export const Hlc = {
  format(ts: HlcTimestamp): string {
    return `${String(ts.wallMs).padStart(15, '0')}:${String(ts.counter).padStart(5, '0')}:${ts.node}`;
  },

  parse(text: string): HlcTimestamp {
    const match = HLC_PATTERN.exec(text);
    if (!match) throw new Error(`not an HLC timestamp: ${text.slice(0, 80)}`);
    return { wallMs: Number(match[1]), counter: Number(match[2]), node: match[3] as string };
  },

  compare(a: string, b: string): number {
    return a < b ? -1 : a > b ? 1 : 0;
  },

  max(a: string, b: string): string {
    return a >= b ? a : b;
  },
};

/**
 * A clock that issues monotonically increasing timestamps for one node and takes in the
 * timestamps it receives, so that causally later events always carry larger timestamps.
 */
export class HybridLogicalClock {
  private last: HlcTimestamp;

  constructor(
    readonly node: string,
    private readonly now: () => number = Date.now,
  ) {
    this.last = { wallMs: 0, counter: 0, node };
  }

  /** A timestamp for a local event. */
  tick(): string {
    const wall = this.now();
    this.last =
      wall > this.last.wallMs
        ? { wallMs: wall, counter: 0, node: this.node }
        : this.bump(this.last.wallMs, this.last.counter + 1);
    return Hlc.format(this.last);
  }

  /** Takes in a remote timestamp and returns one later than both it and every local one. */
  receive(remote: string): string {
    const other = Hlc.parse(remote);
    const wall = this.now();
    const maxWall = Math.max(wall, this.last.wallMs, other.wallMs);
    let counter = 0;
    if (maxWall === this.last.wallMs && maxWall === other.wallMs) {
      counter = Math.max(this.last.counter, other.counter) + 1;
    } else if (maxWall === this.last.wallMs) {
      counter = this.last.counter + 1;
    } else if (maxWall === other.wallMs) {
      counter = other.counter + 1;
    }
    this.last = this.bump(maxWall, counter);
    return Hlc.format(this.last);
  }

  /** Milliseconds by which a remote timestamp runs ahead of this node's wall clock. */
  skewOf(remote: string): number {
    return Hlc.parse(remote).wallMs - this.now();
  }

  // The counter is bounded by its five digits; past that the clock borrows the next millisecond.
  private bump(wallMs: number, counter: number): HlcTimestamp {
    return counter > MAX_COUNTER
      ? { wallMs: wallMs + 1, counter: 0, node: this.node }
      : { wallMs, counter, node: this.node };
  }
}
