import { z } from 'zod';
import { vectorClockRecordSchema } from '../clocks/schemas.js';
import { hlcSchema } from '../clocks/schemas.js';
import { mutationOpSchema } from '../delta.js';
import { entityIdSchema, entityTypeSchema } from '../identifiers.js';
import { jsonObjectSchema } from '../json-value-schemas.js';
import { cursorSchema } from '../sync-position.js';
import { frameIdSchema } from './envelope.js';

/** Most entity types one `subscribe` frame may name. */
export const MAX_TYPES_PER_SUBSCRIBE = 64;
/** Largest page a `sync` may ask for. */
export const MAX_SYNC_LIMIT = 1000;

export const subscribePayloadSchema = z.strictObject({
  entityTypes: z.array(entityTypeSchema).min(1).max(MAX_TYPES_PER_SUBSCRIBE),
  /** Resume positions per entity type: missed changes after each cursor are replayed first. */
  cursors: z.record(entityTypeSchema, cursorSchema).optional(),
});

export const unsubscribePayloadSchema = z.strictObject({
  entityTypes: z.array(entityTypeSchema).min(1).max(MAX_TYPES_PER_SUBSCRIBE),
});

export const mutatePayloadSchema = z
  .strictObject({
    /** Chosen by the client, unique per tenant; resending it never applies the change twice. */
    mutationId: z
      .string()
      .min(8)
      .max(128)
      .regex(/^[A-Za-z0-9_:-]+$/, 'mutationId must match [A-Za-z0-9_:-]'),
    entityType: entityTypeSchema,
    entityId: entityIdSchema,
    op: mutationOpSchema,
    /** The full document for `upsert`, the JSON merge patch for `patch`; absent for `delete`. */
    data: jsonObjectSchema.optional(),
    /** The entity version the client's change was made on (0: the entity did not exist). */
    baseVersion: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
    vectorClock: vectorClockRecordSchema,
    hlc: hlcSchema,
    /** The client's own id, recorded with the change (defaults to the connection id). */
    clientId: z.string().min(1).max(128).optional(),
  })
  .refine((m) => (m.op === 'delete') === (m.data === undefined), {
    message: '`data` is required for upsert and patch and must be absent for delete',
    path: ['data'],
  });

export const syncPayloadSchema = z
  .strictObject({
    entityType: entityTypeSchema,
    /** Changes after this cursor (from the change log), paged by `limit`. */
    since: cursorSchema.optional(),
    /** With `sinceVersion`: the changes of one entity after that version. */
    entityId: entityIdSchema.optional(),
    sinceVersion: z.number().int().nonnegative().optional(),
    /** The current state instead of changes, paged by entity id with `pageToken`. */
    snapshot: z.boolean().optional(),
    pageToken: z.string().max(512).optional(),
    limit: z.number().int().min(1).max(MAX_SYNC_LIMIT).optional(),
  })
  .refine((s) => s.sinceVersion === undefined || s.entityId !== undefined, {
    message: '`sinceVersion` needs `entityId`',
    path: ['sinceVersion'],
  });

export const pingPayloadSchema = z.strictObject({});

/** Renews the connection's token before it expires (after `auth_expiring`, or whenever the client likes). */
export const authPayloadSchema = z.strictObject({
  token: z.string().min(1).max(8192),
});

/** Client → server frames, one schema per type. */
export const clientFrameSchemas = {
  subscribe: subscribePayloadSchema,
  unsubscribe: unsubscribePayloadSchema,
  mutate: mutatePayloadSchema,
  sync: syncPayloadSchema,
  ping: pingPayloadSchema,
  auth: authPayloadSchema,
} as const;

export type ClientFrameType = keyof typeof clientFrameSchemas;
export type SubscribePayload = z.infer<typeof subscribePayloadSchema>;
export type UnsubscribePayload = z.infer<typeof unsubscribePayloadSchema>;
export type MutatePayload = z.infer<typeof mutatePayloadSchema>;
export type SyncPayload = z.infer<typeof syncPayloadSchema>;
export type AuthPayload = z.infer<typeof authPayloadSchema>;

export type ClientFrame = {
  [K in ClientFrameType]: { type: K; id?: string; payload: z.infer<(typeof clientFrameSchemas)[K]>; timestamp: number };
}[ClientFrameType];

export function isClientFrameType(type: string): type is ClientFrameType {
  return Object.hasOwn(clientFrameSchemas, type);
}

export { frameIdSchema };
