import { z } from 'zod';
import { conflictStrategySchema } from '../conflict-strategy.js';
import { entityTypeSchema, tenantSchema } from '../identifiers.js';

/*
 * Conflict policies on the bus. The conflict services own them (PostgreSQL, the configured
 * default, the admin API); sync workers resolve conflicts themselves, with the strategy they ask
 * for here and keep until it expires or a change is announced.
 */

/** A worker asks which strategy decides conflicts of one entity type of one tenant. */
export const policyLookupSchema = z.strictObject({ tenant: tenantSchema, entityType: entityTypeSchema });
export type PolicyLookup = z.infer<typeof policyLookupSchema>;

export const policyAnswerSchema = z.strictObject({
  strategy: conflictStrategySchema,
  /** How long the answer may be reused without asking again (changes are also announced). */
  maxAgeMs: z.number().int().nonnegative(),
});
export type PolicyAnswer = z.infer<typeof policyAnswerSchema>;

/** Announced to every worker and conflict service when a policy was set: they drop what they kept. */
export const policyChangedSchema = z.strictObject({ tenant: tenantSchema, entityType: entityTypeSchema });
export type PolicyChanged = z.infer<typeof policyChangedSchema>;
