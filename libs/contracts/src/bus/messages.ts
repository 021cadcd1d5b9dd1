import { z } from 'zod';
import { hlcSchema } from '../clocks/schemas.js';
import { vectorClockRecordSchema } from '../clocks/schemas.js';
import { conflictStrategySchema, mutationStatusSchema } from '../conflict-strategy.js';
import { fieldChangeSchema, mutationOpSchema } from '../delta.js';
import { entityIdSchema, entityTypeSchema, tenantSchema } from '../identifiers.js';
import { jsonObjectSchema } from '../json-value-schemas.js';

/** Message stored in MUTATIONS: a client's `mutate` with who sent it, as the gateway saw it. */
export const mutationMessageSchema = z.strictObject({
  mutationId: z.string().min(1).max(128),
  tenant: tenantSchema,
  userId: z.string().min(1).max(256),
  clientId: z.string().min(1).max(256),
  entityType: entityTypeSchema,
  entityId: entityIdSchema,
  op: mutationOpSchema,
  data: jsonObjectSchema.optional(),
  baseVersion: z.number().int().nonnegative(),
  vectorClock: vectorClockRecordSchema,
  hlc: hlcSchema,
});
export type MutationMessage = z.infer<typeof mutationMessageSchema>;

/**
 * Message stored in CHANGES: one committed entity version. The body is the client-facing
 * delta (without `seq` and `cursor`, which only the stream knows), so a gateway forwards it
 * without re-encoding. Routing data (author, mutation, status) travels in headers.
 */
export const changeEventSchema = z.strictObject({
  entityType: entityTypeSchema,
  entityId: entityIdSchema,
  version: z.number().int().positive(),
  op: mutationOpSchema,
  deleted: z.boolean(),
  changes: z.array(fieldChangeSchema),
  vectorClock: vectorClockRecordSchema,
  timestamp: hlcSchema,
});
export type ChangeEvent = z.infer<typeof changeEventSchema>;

/** Stable codes of refusals by the server (beside the conflict strategies' `rejected`). */
export const outcomeCodeSchema = z.enum(['SUPERSEDED']);
export type OutcomeCode = z.infer<typeof outcomeCodeSchema>;

/** Sent by a worker to the gateway that took a mutation, once it is processed. */
export const outcomeMessageSchema = z.strictObject({
  connectionId: z.string(),
  mutationId: z.string(),
  entityType: entityTypeSchema,
  entityId: entityIdSchema,
  status: mutationStatusSchema,
  version: z.number().int().nonnegative(),
  data: jsonObjectSchema.nullable().optional(),
  vectorClock: vectorClockRecordSchema.optional(),
  duplicate: z.boolean().optional(),
  /** Why the server refused the mutation, when it was not a conflict strategy that did. */
  reason: z.string().max(500).optional(),
  /** A stable code for that refusal: `SUPERSEDED` when mutations stored after it, applied first, wrote all it changes. */
  code: outcomeCodeSchema.optional(),
  /** The conflict strategy that decided, when the mutation was concurrent with another change. */
  strategy: conflictStrategySchema.optional(),
});
export type OutcomeMessage = z.infer<typeof outcomeMessageSchema>;

/** The outcomes of one batch for one gateway: one message however many of its mutations the batch held. */
export const outcomeBatchSchema = z.strictObject({ outcomes: z.array(outcomeMessageSchema).min(1) });
export type OutcomeBatch = z.infer<typeof outcomeBatchSchema>;

/** Query: the recorded outcome of a mutation id (for a resent mutation). */
export const outcomeQuerySchema = z.strictObject({ tenant: tenantSchema, mutationId: z.string().min(1).max(128) });
export type OutcomeQuery = z.infer<typeof outcomeQuerySchema>;
export const outcomeQueryResultSchema = z.union([
  z.strictObject({ found: z.literal(false) }),
  z.strictObject({ found: z.literal(true), outcome: outcomeMessageSchema.omit({ connectionId: true }) }),
]);
export type OutcomeQueryResult = z.infer<typeof outcomeQueryResultSchema>;

/** Query: the recorded outcomes of several mutations of one tenant; those not recorded yet are left out. */
export const MAX_OUTCOMES_PER_QUERY = 200;
export const outcomesQuerySchema = z.strictObject({
  tenant: tenantSchema,
  mutationIds: z.array(z.string().min(1).max(128)).min(1).max(MAX_OUTCOMES_PER_QUERY),
});
export type OutcomesQuery = z.infer<typeof outcomesQuerySchema>;
export const outcomesQueryResultSchema = z.strictObject({
  outcomes: z.array(outcomeMessageSchema.omit({ connectionId: true })),
});
export type OutcomesQueryResult = z.infer<typeof outcomesQueryResultSchema>;

/** Query: changes of an entity type after a stream sequence, or of one entity after a version. */
export const changesQuerySchema = z.strictObject({
  tenant: tenantSchema,
  entityType: entityTypeSchema,
  afterSeq: z.number().int().nonnegative().optional(),
  entityId: entityIdSchema.optional(),
  afterVersion: z.number().int().nonnegative().optional(),
  limit: z.number().int().min(1).max(1000),
});
export type ChangesQuery = z.infer<typeof changesQuerySchema>;

export const changesQueryResultSchema = z.strictObject({
  changes: z.array(changeEventSchema.extend({ seq: z.number().int().positive().nullable() })),
  hasMore: z.boolean(),
  /** Retention has removed every change up to this stream sequence: older cursors cannot be served. */
  prunedThroughSeq: z.number().int().nonnegative(),
});
export type ChangesQueryResult = z.infer<typeof changesQueryResultSchema>;

/** Query: the current entities of a type, paged by entity id. */
export const snapshotQuerySchema = z.strictObject({
  tenant: tenantSchema,
  entityType: entityTypeSchema,
  entityId: entityIdSchema.optional(),
  afterEntityId: z.string().max(512).optional(),
  limit: z.number().int().min(1).max(1000),
});
export type SnapshotQuery = z.infer<typeof snapshotQuerySchema>;

export const snapshotQueryResultSchema = z.strictObject({
  entities: z.array(
    z.strictObject({
      entityId: z.string(),
      version: z.number().int(),
      data: jsonObjectSchema.nullable(),
      deleted: z.boolean(),
      vectorClock: vectorClockRecordSchema,
    }),
  ),
  hasMore: z.boolean(),
});
export type SnapshotQueryResult = z.infer<typeof snapshotQueryResultSchema>;

/** Query: whether a worker reaches PostgreSQL (for the gateway's readiness). */
export const healthQuerySchema = z.strictObject({});
export const healthQueryResultSchema = z.strictObject({ postgres: z.literal('ok') });

/** Query: how much one tenant has stored. */
export const statsQuerySchema = z.strictObject({ tenant: tenantSchema });
export type StatsQuery = z.infer<typeof statsQuerySchema>;
export const statsQueryResultSchema = z.strictObject({
  /** Committed changes in the change log (within retention). */
  changes: z.number().int().nonnegative(),
  /** Entities that exist (not deleted). */
  entities: z.number().int().nonnegative(),
});
export type StatsQueryResult = z.infer<typeof statsQueryResultSchema>;
