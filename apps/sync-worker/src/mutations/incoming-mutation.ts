import type {
  ConflictStrategy,
  JsonObject,
  MutationMessage,
  MutationStatus,
  VectorClockRecord,
} from '@syncline/contracts';
import type { Context } from '@syncline/platform';

/** A validated mutation with what its JetStream message carried besides the body. */
export interface IncomingMutation {
  readonly mutation: MutationMessage;
  /** Where JetStream stored it in MUTATIONS: the order one entity's mutations are applied in. */
  readonly streamSeq: number;
  readonly gatewayId: string | null;
  readonly connectionId: string | null;
  readonly receivedAt: number | null;
  /** Context of the worker's span for this mutation; its trace started at the gateway. */
  readonly trace: Context;
  readonly traceparent: string | null;
}

export interface MutationOutcome {
  readonly incoming: IncomingMutation;
  readonly status: MutationStatus;
  readonly version: number;
  /** The server's document, sent back for `merged` (rebase) and `rejected` (roll back). */
  readonly data?: JsonObject | null;
  readonly vectorClock?: VectorClockRecord;
  readonly duplicate: boolean;
  /** Why the server refused the mutation itself, when it did. */
  readonly reason?: string;
  /** A stable reason code for a refusal: `SUPERSEDED` when mutations stored after it wrote all it changes. */
  readonly code?: 'SUPERSEDED';
  /** The conflict strategy that decided, when the mutation was concurrent with another change. */
  readonly strategy?: ConflictStrategy;
}
