import { z } from 'zod';
import { conflictStrategySchema } from '../conflict-strategy.js';
import { entityIdSchema, entityTypeSchema, tenantSchema } from '../identifiers.js';
import { jsonObjectSchema } from '../json-value-schemas.js';

/*
 * Administration requests the conflict services answer over NATS (queue group), for the
 * gateway's admin HTTP routes: conflict policies per entity type, recorded conflicts, and the
 * messages the sync workers refused.
 */

export const AdminRequest = {
  getPolicy: 'policy.get',
  putPolicy: 'policy.put',
  listConflicts: 'conflicts.list',
  listRejectedMessages: 'rejected.list',
} as const;
export type AdminRequest = (typeof AdminRequest)[keyof typeof AdminRequest];

export const policyRequestSchema = z.strictObject({ tenant: tenantSchema, entityType: entityTypeSchema });
export type PolicyRequest = z.infer<typeof policyRequestSchema>;

export const policyUpdateSchema = policyRequestSchema.extend({ strategy: conflictStrategySchema });
export type PolicyUpdate = z.infer<typeof policyUpdateSchema>;

/** The HTTP body of `PUT /api/v1/policies/:entityType`. */
export const policyBodySchema = z.strictObject({ strategy: conflictStrategySchema });

export const policySchema = z.strictObject({
  entityType: entityTypeSchema,
  strategy: conflictStrategySchema,
  /** `policy`: set for this entity type; `default`: the service's configured default applies. */
  source: z.enum(['policy', 'default']),
  updatedAt: z.string().optional(),
});
export type Policy = z.infer<typeof policySchema>;

export const MAX_CONFLICTS_PAGE = 200;

/** Page backwards: records before this id (the `nextBefore` of the previous page). */
const beforeSchema = z
  .string()
  .regex(/^\d{1,19}$/)
  .optional();

/** `GET /api/v1/conflicts` query, and the request behind it (with the tenant). */
export const conflictsQuerySchema = z.strictObject({
  entityType: entityTypeSchema.optional(),
  entityId: entityIdSchema.optional(),
  limit: z.coerce.number().int().min(1).max(MAX_CONFLICTS_PAGE).optional(),
  before: beforeSchema,
});
export const conflictsRequestSchema = conflictsQuerySchema.extend({ tenant: tenantSchema });
export type ConflictsRequest = z.infer<typeof conflictsRequestSchema>;

export const recordedConflictSchema = z.strictObject({
  id: z.string(),
  entityType: entityTypeSchema,
  entityId: entityIdSchema,
  mutationId: z.string(),
  strategy: conflictStrategySchema,
  winner: z.enum(['client', 'server', 'merged']),
  baseVersion: z.number().int(),
  serverVersion: z.number().int(),
  resultVersion: z.number().int(),
  base: jsonObjectSchema.nullable(),
  serverData: jsonObjectSchema.nullable(),
  clientData: jsonObjectSchema.nullable(),
  result: jsonObjectSchema.nullable(),
  contested: z.array(z.string()),
  createdAt: z.string(),
});
export type RecordedConflict = z.infer<typeof recordedConflictSchema>;

export const conflictsPageSchema = z.strictObject({
  conflicts: z.array(recordedConflictSchema),
  /** Pass as `before` for older conflicts; absent on the last page. */
  nextBefore: z.string().optional(),
});
export type ConflictsPage = z.infer<typeof conflictsPageSchema>;

export const MAX_REJECTED_MESSAGES_PAGE = 200;

/** `GET /api/v1/rejected-messages` query, and the request behind it (with the tenant). */
export const rejectedMessagesQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(MAX_REJECTED_MESSAGES_PAGE).optional(),
  before: beforeSchema,
});
export const rejectedMessagesRequestSchema = rejectedMessagesQuerySchema.extend({ tenant: tenantSchema });
export type RejectedMessagesRequest = z.infer<typeof rejectedMessagesRequestSchema>;

/**
 * A message published to MUTATIONS that can never be applied (it fails its schema, its subject
 * does not match its body, its clock is too far ahead): the sync worker terminated it and kept
 * this record. Mutations from clients are refused at the gateway, so these come from backend
 * services publishing on NATS.
 */
export const rejectedMessageSchema = z.strictObject({
  id: z.string(),
  stream: z.string(),
  /** Its sequence in the stream. */
  streamSeq: z.number().int(),
  subject: z.string(),
  /** Why it was refused: the first failing schema path, or the rule it broke. */
  reason: z.string(),
  /** The first 8 KiB of the message as received, as text (invalid UTF-8 replaced). */
  payload: z.string(),
  rejectedAt: z.string(),
});
export type RejectedMessage = z.infer<typeof rejectedMessageSchema>;

export const rejectedMessagesPageSchema = z.strictObject({
  messages: z.array(rejectedMessageSchema),
  /** Pass as `before` for older messages; absent on the last page. */
  nextBefore: z.string().optional(),
});
export type RejectedMessagesPage = z.infer<typeof rejectedMessagesPageSchema>;
