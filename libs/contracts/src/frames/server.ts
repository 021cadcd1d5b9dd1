import type { VectorClockRecord } from '../clocks/vector-clock.js';
import type { ConflictStrategy, MutationStatus } from '../conflict-strategy.js';
import type { FieldChange, MutationOp } from '../delta.js';
import type { ErrorCode } from '../errors.js';
import type { JsonObject } from '../json.js';

/**
 * Server → client frames. The gateway builds these from validated data, so they are types
 * rather than schemas; clients that want to check them can use `serverFrameTypes`.
 */
export interface WelcomePayload {
  readonly protocolVersion: number;
  readonly connectionId: string;
  readonly gatewayId: string;
  readonly userId: string;
  readonly tenant: string;
  /** Server wall clock, epoch ms, for the client's HLC and skew estimate. */
  readonly serverTime: number;
  readonly heartbeatIntervalMs: number;
  readonly maxFrameBytes: number;
}

export interface SubscriptionState {
  readonly entityType: string;
  /** The cursor the subscription is at after any replay: live changes follow it. */
  readonly cursor: string;
  /** How many missed changes were replayed before this frame. */
  readonly replayed: number;
}

export interface SubscribedPayload {
  readonly subscriptions: readonly SubscriptionState[];
}

export interface UnsubscribedPayload {
  readonly entityTypes: readonly string[];
}

/** One committed change of one entity, as every subscriber receives it. */
export interface DeltaPayload {
  readonly entityType: string;
  readonly entityId: string;
  readonly version: number;
  readonly op: MutationOp;
  /** True when the entity is deleted after this change (a tombstone). */
  readonly deleted: boolean;
  readonly changes: readonly FieldChange[];
  readonly vectorClock: VectorClockRecord;
  /** HLC timestamp of the change. */
  readonly timestamp: string;
  /** CHANGES stream sequence; absent in change-log pages that predate publication. */
  readonly seq?: number;
  /** Cursor to resume after this change. */
  readonly cursor?: string;
}

/** The first ack: JetStream stored the mutation; it will not be lost. */
export interface AcceptedAckPayload {
  readonly status: 'accepted';
  readonly mutationId: string;
  readonly entityType: string;
  readonly entityId: string;
}

/** The second ack: what became of the mutation. */
export interface OutcomeAckPayload {
  readonly status: MutationStatus;
  readonly mutationId: string;
  readonly entityType: string;
  readonly entityId: string;
  readonly version: number;
  /** The server's document after the mutation, for `merged` (rebase) and `rejected` (roll back). */
  readonly data?: JsonObject | null | undefined;
  readonly vectorClock?: VectorClockRecord | undefined;
  /** True when this mutation id had already been processed; this is its recorded outcome. */
  readonly duplicate?: boolean | undefined;
  /**
   * Set when the server refused the mutation itself (a value PostgreSQL cannot store) rather
   * than a conflict strategy keeping its state; the client rolls back either way.
   */
  readonly reason?: string | undefined;
  /**
   * A stable code for a refusal by the server: `SUPERSEDED` when this mutation reached its entity
   * late (after mutations stored after it, for instance because a worker died holding it) and
   * those wrote everything it changes, or replaced the document: in stream order nothing of it
   * would be left. `status` is `rejected`; the client rolls back.
   */
  readonly code?: 'SUPERSEDED' | undefined;
  /** The conflict strategy that decided, when the mutation was concurrent with another change. */
  readonly strategy?: ConflictStrategy | undefined;
}

export type AckPayload = AcceptedAckPayload | OutcomeAckPayload;

export interface SnapshotEntity {
  readonly entityId: string;
  readonly version: number;
  readonly data: JsonObject | null;
  readonly deleted: boolean;
  readonly vectorClock: VectorClockRecord;
}

export type SyncResponsePayload =
  | {
      readonly mode: 'changes';
      readonly entityType: string;
      readonly changes: readonly DeltaPayload[];
      /** Cursor after the last change of this page; pass it as `since` for the next page. */
      readonly cursor: string;
      readonly hasMore: boolean;
    }
  | {
      readonly mode: 'snapshot';
      readonly entityType: string;
      readonly entities: readonly SnapshotEntity[];
      /** Subscribe with this cursor after the last page: nothing between is missed. */
      readonly cursor: string;
      readonly hasMore: boolean;
      readonly nextPageToken?: string;
    };

export interface SyncRequiredPayload {
  readonly entityType: string;
  readonly reason: 'cursor_expired' | 'epoch_changed';
  /** The cursor the client presented. */
  readonly cursor: string;
}

export interface ErrorPayload {
  readonly code: ErrorCode;
  readonly message: string;
  /** The `id` of the client frame this error answers, when it had one. */
  readonly ref?: string;
  readonly retryAfterMs?: number;
}

export interface PongPayload {
  readonly serverTime: number;
}

/** The connection's token expires soon: send `auth` with a fresh one before `expiresAt`. */
export interface AuthExpiringPayload {
  /** Epoch ms; at that moment the gateway sends `AUTH_EXPIRED` and closes with 4402. */
  readonly expiresAt: number;
}

/** The answer to `auth`: the connection now runs on the new token. */
export interface AuthRenewedPayload {
  /** Epoch ms, or absent for a token without expiry. */
  readonly expiresAt?: number;
  /** Entity types the connection was subscribed to that the new token may not read: unsubscribed. */
  readonly revoked: readonly string[];
}

export interface ServerPayloads {
  welcome: WelcomePayload;
  subscribed: SubscribedPayload;
  unsubscribed: UnsubscribedPayload;
  delta: DeltaPayload;
  ack: AckPayload;
  sync_response: SyncResponsePayload;
  sync_required: SyncRequiredPayload;
  error: ErrorPayload;
  pong: PongPayload;
  auth_expiring: AuthExpiringPayload;
  auth_renewed: AuthRenewedPayload;
}

export type ServerFrameType = keyof ServerPayloads;
export const serverFrameTypes: readonly ServerFrameType[] = [
  'welcome',
  'subscribed',
  'unsubscribed',
  'delta',
  'ack',
  'sync_response',
  'sync_required',
  'error',
  'pong',
  'auth_expiring',
  'auth_renewed',
];

export type ServerFrame = {
  [K in ServerFrameType]: { type: K; id?: string; payload: ServerPayloads[K]; timestamp: number };
}[ServerFrameType];
