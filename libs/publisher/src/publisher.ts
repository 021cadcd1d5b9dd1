import type { JetStreamClient } from '@nats-io/jetstream';
import {
  ErrorCode,
  HybridLogicalClock,
  NAME_PATTERN,
  SynclineError,
  ingestMessageId,
  ingestMessageSchema,
  ingestSubject,
  type IngestMessage,
  type JsonObject,
  type MutationOp,
} from '@syncline/contracts';

export interface PublisherOptions {
  /** JetStream client of a connection whose permissions allow the tenant's mutation subjects. */
  readonly jetstream: JetStreamClient;
  /** First token of every subject: the deployment's `SYNC_NAMESPACE`. */
  readonly namespace?: string;
  readonly tenant: string;
  /** Name of the publishing service: its clock node, and the author recorded with each change. */
  readonly source: string;
}

/** A mutation JetStream has stored; the sync worker applies it shortly after. */
export interface Published {
  readonly mutationId: string;
  /** Sequence of the mutation in the MUTATIONS stream. */
  readonly seq: number;
}

export interface Publisher {
  /** Replaces the entity's document, creating the entity if needed. */
  upsert(entityType: string, id: string, data: JsonObject): Promise<Published>;
  /** Applies an RFC 7386 merge patch (`null` removes a field) to the entity's document. */
  patch(entityType: string, id: string, patch: JsonObject, baseVersion?: number): Promise<Published>;
  /** Deletes the entity; it stays as a tombstone. */
  delete(entityType: string, id: string): Promise<Published>;
}

/**
 * The base version of a service that does not track versions: none seen. The worker applies a
 * mutation as it is when its base version is the entity's current one, or when its vector clock
 * covers the entity's (only this source has written it); otherwise the tenant's conflict
 * strategy reconciles it with the changes it did not see. 0 claims no knowledge, so a change
 * made by someone else in the meantime is resolved, never silently overwritten; a guessed
 * number that happened to equal the current version would skip that resolution.
 */
const UNKNOWN_VERSION = 0;

/** A publish that timed out is retried with the same message id, which JetStream de-duplicates. */
const PUBLISH_ATTEMPTS = 3;

interface Change {
  readonly entityType: string;
  readonly entityId: string;
  readonly op: MutationOp;
  readonly data?: JsonObject;
  readonly baseVersion: number;
}

/**
 * Publishes a backend service's entity changes onto the ingest subjects (docs/publishing.md),
 * with the guarantees of client mutations: validated, applied once, in order per entity.
 */
export function createPublisher({ jetstream, namespace = 'sync', tenant, source }: PublisherOptions): Publisher {
  assertSource(source);
  const clock = new HybridLogicalClock(source);
  const nextCount = growingCounter();

  async function publish(change: Change): Promise<Published> {
    const message = validated({
      mutationId: crypto.randomUUID(),
      tenant,
      userId: source,
      clientId: source,
      ...change,
      vectorClock: { [source]: nextCount() },
      hlc: clock.tick(),
    });
    const ack = await jetstream.publish(
      ingestSubject(namespace, tenant, message.entityType, message.entityId),
      JSON.stringify(message),
      { msgID: ingestMessageId(tenant, message.mutationId), retries: PUBLISH_ATTEMPTS },
    );
    return { mutationId: message.mutationId, seq: ack.seq };
  }

  return {
    upsert: (entityType, entityId, data) =>
      publish({ entityType, entityId, op: 'upsert', data, baseVersion: UNKNOWN_VERSION }),
    patch: (entityType, entityId, patch, baseVersion = UNKNOWN_VERSION) =>
      publish({ entityType, entityId, op: 'patch', data: patch, baseVersion }),
    delete: (entityType, entityId) => publish({ entityType, entityId, op: 'delete', baseVersion: UNKNOWN_VERSION }),
  };
}

function assertSource(source: string): void {
  if (!NAME_PATTERN.test(source)) {
    throw new SynclineError(ErrorCode.INVALID_IDENTIFIER, `source "${source.slice(0, 80)}" must match ${NAME_PATTERN}`);
  }
}

/** Refuses here what the worker would refuse later, so the caller gets the reason. */
function validated(message: IngestMessage): IngestMessage {
  const parsed = ingestMessageSchema.safeParse(message);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new SynclineError(
    ErrorCode.VALIDATION_FAILED,
    `${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid mutation'}`,
  );
}

/**
 * The source's vector clock entry. It must grow with every mutation, across restarts too:
 * otherwise a client that saw an older change of this source would look as if it had seen a
 * newer one, and its concurrent edit would replace that change instead of being resolved with
 * it. Epoch milliseconds grow across restarts without the service storing anything.
 */
function growingCounter(): () => number {
  let last = 0;
  return () => (last = Math.max(last + 1, Date.now()));
}
