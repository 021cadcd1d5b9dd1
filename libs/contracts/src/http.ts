import { z } from 'zod';
import type { VectorClockRecord } from './clocks/vector-clock.js';
import type { ConflictStrategy } from './conflict-strategy.js';
import { MAX_SYNC_LIMIT } from './frames/client.js';
import type { JsonObject } from './json.js';
import { entityIdSchema, entityTypeSchema } from './identifiers.js';
import { cursorSchema } from './sync-position.js';

/** Most mutations one `POST /api/v1/changes` may carry. */
export const MAX_BATCH_SIZE = 100;

/** `GET /api/v1/changes`: the changes of an entity type after a cursor (or of one entity after a version), paged. */
export const changesRequestSchema = z
  .strictObject({
    entityType: entityTypeSchema,
    since: cursorSchema.optional(),
    entityId: entityIdSchema.optional(),
    sinceVersion: z.coerce.number().int().nonnegative().optional(),
    limit: z.coerce.number().int().min(1).max(MAX_SYNC_LIMIT).optional(),
  })
  .refine((query) => query.sinceVersion === undefined || query.entityId !== undefined, {
    message: '`sinceVersion` needs `entityId`',
    path: ['sinceVersion'],
  });

/** `GET /api/v1/entities`: the current state of an entity type (or one entity), paged. */
export const entitiesRequestSchema = z.strictObject({
  entityType: entityTypeSchema,
  entityId: entityIdSchema.optional(),
  pageToken: z.string().max(512).optional(),
  limit: z.coerce.number().int().min(1).max(MAX_SYNC_LIMIT).optional(),
});

/** `POST /api/v1/changes` query: `wait=true` answers each stored item with its final outcome too. */
export const batchOptionsSchema = z.strictObject({
  wait: z.enum(['true', 'false']).optional(),
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
  | {
      readonly index: number;
      readonly mutationId: string;
      readonly status: 'accepted';
      readonly duplicate: boolean;
      /** With `wait=true`: what the worker did (absent if it had not finished in time). */
      readonly outcome?: BatchItemOutcome;
    }
  | {
      readonly index: number;
      readonly mutationId?: string;
      readonly status: 'error';
      readonly code: string;
      readonly message: string;
      readonly retryAfterMs?: number;
    };

export interface BatchItemOutcome {
  readonly status: 'applied' | 'merged' | 'rejected';
  readonly version: number;
  readonly data?: JsonObject | null;
  readonly vectorClock?: VectorClockRecord;
  readonly strategy?: ConflictStrategy;
  readonly reason?: string;
  /** With `rejected`: `SUPERSEDED` when it arrived late and later mutations had written all it changes. */
  readonly code?: 'SUPERSEDED';
}

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
