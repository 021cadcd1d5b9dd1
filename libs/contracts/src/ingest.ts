import { Header } from './bus/headers.js';
import { mutationMessageSchema, type MutationMessage } from './bus/messages.js';
import { MessageIds } from './streams.js';
import { Subjects } from './subjects.js';

/**
 * Ingest: how a backend service changes entities with a plain NATS client (docs/publishing.md).
 *
 * There is no separate ingest path. A service publishes, with JetStream, exactly what a gateway
 * stores for a client: a mutation message on the entity's mutation subject, which the MUTATIONS
 * stream captures. The sync worker treats both alike, so ingest gets the same validation,
 * per-entity ordering, conflict resolution and exactly-once effect as client mutations.
 *
 *   subject   <namespace>.mut.<tenant>.<entityType>.<entityIdToken>   ({@link ingestSubject})
 *   header    Nats-Msg-Id: <tenant>:<mutationId>                      ({@link ingestMessageId})
 *   body      JSON, {@link ingestMessageSchema}
 *
 * The worker refuses a message whose subject is not the one its body's tenant, entity type and
 * entity id give, so NATS permissions on subjects decide which tenants and entity types a
 * service may write.
 */

/** The body of an ingest message: the mutation message the gateways publish for clients. */
export const ingestMessageSchema = mutationMessageSchema;
export type IngestMessage = MutationMessage;

/** Header carrying the JetStream de-duplication id; its value is {@link ingestMessageId}. */
export const INGEST_MESSAGE_ID_HEADER = Header.msgId;

/** The subject a mutation of this entity must be published on. */
export function ingestSubject(namespace: string, tenant: string, entityType: string, entityId: string): string {
  return new Subjects(namespace).mutation(tenant, entityType, entityId);
}

/**
 * The `Nats-Msg-Id` of a mutation, as the gateways set it: scoped by tenant, because JetStream
 * de-duplicates across the whole stream and two tenants may well choose the same mutation id.
 */
export function ingestMessageId(tenant: string, mutationId: string): string {
  return MessageIds.mutation(tenant, mutationId);
}
