import { z } from 'zod';
import { MAX_SYNC_LIMIT } from './frames/client.js';
import { entityIdSchema, entityTypeSchema } from './identifiers.js';
import { cursorSchema } from './sync-position.js';

/** Most mutations one `POST /api/v1/changes` may carry. */
export const MAX_BATCH_SIZE = 100;

/** `GET /api/v1/changes`: the changes of an entity type after a cursor, paged. */
export const changesRequestSchema = z.strictObject({
  entityType: entityTypeSchema,
  since: cursorSchema.optional(),
  limit: z.coerce.number().int().min(1).max(MAX_SYNC_LIMIT).optional(),
});
export type ChangesRequest = z.infer<typeof changesRequestSchema>;

/**
 * `POST /api/v1/changes`: a batch of mutations, each shaped like a `mutate` frame's payload.
 * Items are checked one by one, so one bad item does not refuse the others.
 */
export const batchRequestSchema = z.strictObject({
  mutations: z.array(z.unknown()).min(1).max(MAX_BATCH_SIZE),
});

/** The result of one batch item: stored (the outcome follows in the change feed), or why not. */
export type BatchItemResult =
  | { readonly index: number; readonly mutationId: string; readonly status: 'accepted'; readonly duplicate: boolean }
  | {
      readonly index: number;
      readonly mutationId?: string;
      readonly status: 'error';
      readonly code: string;
      readonly message: string;
      readonly retryAfterMs?: number;
    };

/** What an SSE stream can be narrowed to, besides its entity types. */
export const SSE_EVENT_TYPES = ['created', 'updated', 'deleted'] as const;
export type SseEventType = (typeof SSE_EVENT_TYPES)[number];

const commaList = <T extends z.ZodType<string, string>>(item: T, max: number) =>
  z
    .string()
    .transform((text) => [
      ...new Set(
        text
          .split(',')
          .map((part) => part.trim())
          .filter(Boolean),
      ),
    ])
    .pipe(z.array(item).min(1).max(max));

/** `GET /api/v1/sync/events` query: which changes the stream carries. */
export const sseRequestSchema = z
  .strictObject({
    /** Comma separated. */
    entityTypes: commaList(entityTypeSchema, 64),
    /** Only this entity (needs exactly one entity type). */
    entityId: entityIdSchema.optional(),
    /** Comma separated: `created`, `updated`, `deleted` (default: all). */
    events: commaList(z.enum(SSE_EVENT_TYPES), SSE_EVENT_TYPES.length).optional(),
    /** Resume position for clients that cannot send `Last-Event-ID` (the header wins). */
    lastEventId: cursorSchema.optional(),
  })
  .refine((query) => query.entityId === undefined || query.entityTypes.length === 1, {
    message: '`entityId` needs exactly one entity type',
    path: ['entityId'],
  });
export type SseRequest = z.infer<typeof sseRequestSchema>;
