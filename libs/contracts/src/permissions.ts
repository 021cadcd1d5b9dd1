import { z } from 'zod';
import { NAME_PATTERN } from './identifiers.js';

/** In a permission list, every entity type of the tenant. */
export const ANY_ENTITY_TYPE = '*';

/**
 * What a token's holder may do within its tenant: read (subscribe, resume, sync, snapshots,
 * history, SSE) and write (mutate, batch, ingest) per entity type, and administer (conflict
 * policies, recorded conflicts, per-tenant statistics).
 */
export interface Permissions {
  readonly read: readonly string[];
  readonly write: readonly string[];
  readonly admin: boolean;
}

const entityTypeOrAny = z
  .string()
  .refine((value) => value === ANY_ENTITY_TYPE || NAME_PATTERN.test(value), 'an entity type or "*"');

/** The `permissions` claim of a client token. */
export const permissionsClaimSchema = z.strictObject({
  read: z.array(entityTypeOrAny).max(256).default([]),
  write: z.array(entityTypeOrAny).max(256).default([]),
  admin: z.boolean().default(false),
});

/**
 * A token without a `permissions` claim may read and write every entity type of its tenant (and
 * administer nothing): the tenant is the boundary unless the issuer narrows it.
 */
export const TENANT_WIDE_PERMISSIONS: Permissions = Object.freeze({
  read: Object.freeze([ANY_ENTITY_TYPE]),
  write: Object.freeze([ANY_ENTITY_TYPE]),
  admin: false,
});

export function canRead(permissions: Permissions, entityType: string): boolean {
  return permissions.admin || allows(permissions.read, entityType);
}

export function canWrite(permissions: Permissions, entityType: string): boolean {
  return permissions.admin || allows(permissions.write, entityType);
}

function allows(list: readonly string[], entityType: string): boolean {
  return list.includes(ANY_ENTITY_TYPE) || list.includes(entityType);
}
