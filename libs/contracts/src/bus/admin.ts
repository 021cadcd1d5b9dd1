import { z } from 'zod';
import { conflictStrategySchema } from '../conflict-strategy.js';
import { entityIdSchema, entityTypeSchema, tenantSchema } from '../identifiers.js';
import { jsonObjectSchema } from '../json-value-schemas.js';

/*
 * Administration requests the conflict services answer over NATS (queue group), for the
 * gateway's admin HTTP routes: conflict policies per entity type, and recorded conflicts.
 */

export const AdminRequest = {
  getPolicy: 'policy.get',
  putPolicy: 'policy.put',
  listConflicts: 'conflicts.list',
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

/** `GET /api/v1/conflicts` query, and the request behind it (with the tenant). */
export const conflictsQuerySchema = z.strictObject({
  entityType: entityTypeSchema.optional(),
  entityId: entityIdSchema.optional(),
  limit: z.coerce.number().int().min(1).max(MAX_CONFLICTS_PAGE).optional(),
  /** Page backwards: conflicts recorded before this id (the `nextBefore` of the previous page). */
  before: z
    .string()
    .regex(/^\d{1,19}$/)
    .optional(),
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
