import type { JsonObject } from '@syncline/contracts';

/** One side of a conflict: its document (`null` when it deleted the entity) and its entity HLC. */
export interface Side {
  readonly data: JsonObject | null;
  readonly hlc: string;
  /**
   * When each field last changed on this side since the base, by JSON Pointer. A contested field
   * is decided by the time of its own last change; without one, by the side's entity HLC.
   */
  readonly fieldHlcs?: Readonly<Record<string, string>>;
}

export interface ConflictInput {
  /** The document both sides started from; `null` when the entity did not exist (or is unknown). */
  readonly base: JsonObject | null;
  readonly server: Side;
  readonly client: Side;
}

export interface Resolution {
  /** The resolved document; `null` when the entity ends deleted. */
  readonly result: JsonObject | null;
  /** `client` when the result equals the client's document, else `server` when it equals the server's, else `merged`. */
  readonly winner: 'client' | 'server' | 'merged';
  /** JSON Pointers where both sides changed the base differently (`""`: the entity as a whole). */
  readonly contested: string[];
}
