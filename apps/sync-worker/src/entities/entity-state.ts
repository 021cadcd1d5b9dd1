import { VectorClocks, type FieldChange, type JsonObject, type VectorClock } from '@syncline/contracts';

/** What the worker knows of an entity: its current version and document. */
export interface EntityState {
  readonly version: number;
  readonly data: JsonObject | null;
  readonly deleted: boolean;
  readonly vectorClock: VectorClock;
  readonly hlc: string;
  /** Where in MUTATIONS (stream epoch and sequence) the mutation that last changed it was stored. */
  readonly appliedStream: string;
  readonly appliedSeq: number;
}

/** An entity no change has made yet. */
export const NEW_ENTITY: EntityState = {
  version: 0,
  data: null,
  deleted: false,
  vectorClock: VectorClocks.empty(),
  hlc: '',
  appliedStream: '',
  appliedSeq: 0,
};

/** One version of an entity and the field changes that made it. */
export interface EntityChange {
  readonly version: number;
  readonly changes: readonly FieldChange[];
}
