/**
 * JetStream streams and consumers, with the settings every service and deployment shares.
 * Plain data in the shape of the JetStream API, so this file has no dependency on a client.
 */
const SECOND_NS = 1_000_000_000;
const HOUR_NS = 3600 * SECOND_NS;

export interface StreamNames {
  readonly mutations: string;
  readonly changes: string;
}

export const DEFAULT_STREAM_NAMES: StreamNames = { mutations: 'MUTATIONS', changes: 'CHANGES' };

export interface StreamSettings {
  /** How long messages are kept, in nanoseconds. */
  readonly maxAgeNs: number;
  /**
   * Bytes the stream may hold; beyond them the oldest messages go. nats-server reserves this much
   * of its JetStream storage for the stream on every server that holds a replica, so it is what
   * decides whether another deployment still fits on a shared server.
   */
  readonly maxBytes: number;
  /** Window in which a repeated message id is dropped as a duplicate, in nanoseconds. */
  readonly duplicateWindowNs: number;
}

/**
 * MUTATIONS is a work queue: a message leaves once a worker acknowledged it, so it holds only
 * the work not yet done (1 GiB is about a million mutations of 1 KB). Its duplicate window
 * bounds how late a resent mutation is still caught by JetStream; later resends are caught by the
 * `mutations` ledger in PostgreSQL. Age and size are defaults: `MUTATIONS_STREAM_MAX_AGE` and
 * `MUTATIONS_STREAM_MAX_BYTES` change them.
 */
export const MUTATIONS_SETTINGS: StreamSettings = {
  maxAgeNs: 7 * 24 * HOUR_NS,
  maxBytes: 1024 ** 3,
  duplicateWindowNs: 2 * 60 * SECOND_NS,
};

/**
 * CHANGES is the replayable feed subscribers resume from. Its window (24 hours, or 2 GiB if that
 * fills first) bounds fast resume; older cursors get `sync_required`. The duplicate window covers
 * outbox re-publication after a crash. `CHANGES_STREAM_MAX_AGE` and `CHANGES_STREAM_MAX_BYTES`
 * change age and size.
 */
export const CHANGES_SETTINGS: StreamSettings = {
  maxAgeNs: 24 * HOUR_NS,
  maxBytes: 2 * 1024 ** 3,
  duplicateWindowNs: 10 * 60 * SECOND_NS,
};

/** The durable consumer all sync workers share. */
export const WORKER_CONSUMER = {
  durableName: 'sync-worker',
  /** Messages a worker may hold unacknowledged, across all replicas. */
  maxAckPending: 20_000,
  /**
   * Unlimited. A failure that passes (PostgreSQL or the conflict services down for minutes) must
   * never leave an accepted mutation behind, and every retry counts as a delivery. A message at
   * fault is found by the worker itself, by halving its batch, and terminated and recorded.
   */
  maxDeliver: -1,
} as const;

/** Deterministic message ids: what makes a republished message a duplicate JetStream drops. */
export const MessageIds = {
  mutation(tenant: string, mutationId: string): string {
    return `${tenant}:${mutationId}`;
  },
  change(tenant: string, entityType: string, entityId: string, version: number): string {
    return `${tenant}:${entityType}:${entityId}:${version}`;
  },
};
