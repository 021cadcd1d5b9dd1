import { type z } from 'zod';
import { commonEnvSchema, databaseEnvSchema, monitoringEnvSchema, positiveInt } from '@syncline/platform';
import { conflictStrategySchema } from '@syncline/contracts';

export const conflictServiceEnvSchema = commonEnvSchema
  .extend(databaseEnvSchema.shape)
  .extend(monitoringEnvSchema.shape)
  .extend({
    /** Strategy for entity types without a row in `conflict_policies`. */
    DEFAULT_CONFLICT_STRATEGY: conflictStrategySchema.default('merge'),
    /** How long a policy read from PostgreSQL is reused before it is read again. */
    POLICY_CACHE_TTL_MS: positiveInt(5000),
  });
export type ConflictServiceConfig = z.infer<typeof conflictServiceEnvSchema>;
