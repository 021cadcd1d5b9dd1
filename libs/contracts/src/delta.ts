import { z } from 'zod';
import type { JsonValue } from './json.js';
import { jsonValueSchema } from './json-value-schemas.js';

/**
 * One changed field of an entity. `field` is a JSON Pointer (RFC 6901) into the document, so
 * nested paths are exact and a list of changes converts losslessly to RFC 6902 JSON Patch.
 * A removed field is a tombstone: `changeType: "removed"` with its old value and no new one.
 */
export interface FieldDiff {
  readonly field: string;
  readonly changeType: ChangeType;
  readonly oldValue?: JsonValue | undefined;
  readonly newValue?: JsonValue | undefined;
}

/** A {@link FieldDiff} as it travels: stamped with the HLC timestamp of the change that made it. */
export interface FieldChange extends FieldDiff {
  readonly timestamp: string;
}

export const ChangeType = { added: 'added', modified: 'modified', removed: 'removed' } as const;
export type ChangeType = (typeof ChangeType)[keyof typeof ChangeType];

export const jsonPointerSchema = z
  .string()
  .max(4096)
  .refine((p) => p === '' || p.startsWith('/'), 'a JSON Pointer is "" or starts with "/"');

export const fieldChangeSchema = z.object({
  field: jsonPointerSchema,
  changeType: z.enum(['added', 'modified', 'removed']),
  oldValue: jsonValueSchema.optional(),
  newValue: jsonValueSchema.optional(),
  timestamp: z.string().max(200),
});

/** How a mutation changes its entity. */
export const MutationOp = {
  /** Replace the whole document (creating it if needed). */
  upsert: 'upsert',
  /** Apply an RFC 7386 JSON merge patch: `null` deletes a field, arrays are replaced whole. */
  patch: 'patch',
  /** Delete the entity; it stays as a tombstone with its version. */
  delete: 'delete',
} as const;
export type MutationOp = (typeof MutationOp)[keyof typeof MutationOp];
export const mutationOpSchema = z.enum(['upsert', 'patch', 'delete']);
