import { z } from 'zod';
import { NAME_PATTERN, tenantSchema } from '../identifiers.js';

/*
 * Rate limits shared by the gateways. Each gateway reports, several times a second, how many
 * mutations of each tenant it accepted since its last report; every other gateway debits its
 * copy of that tenant's token bucket by as much. The buckets of all gateways then drain
 * together, and a tenant's limit holds for the cluster instead of once per gateway.
 */

/** Tenants in one report: beyond it a gateway sends several. */
export const MAX_TENANTS_PER_USAGE_REPORT = 1_000;

export const tenantUsageSchema = z.strictObject({
  /** The reporting gateway's instance id: it skips its own reports. */
  gateway: z.string().regex(NAME_PATTERN),
  /** Mutations accepted per tenant since the gateway's previous report. */
  accepted: z
    .record(tenantSchema, z.number().int().positive().max(1_000_000))
    .refine((counts) => Object.keys(counts).length <= MAX_TENANTS_PER_USAGE_REPORT, {
      message: `at most ${MAX_TENANTS_PER_USAGE_REPORT} tenants per report`,
    }),
});
export type TenantUsage = z.infer<typeof tenantUsageSchema>;
