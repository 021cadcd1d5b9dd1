import { Inject, Injectable } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  ErrorCode,
  QueryName,
  Subjects,
  SyncPositions,
  SynclineError,
  changesQueryResultSchema,
  entityIdSchema,
  snapshotQueryResultSchema,
  type ChangeEvent,
  type DeltaPayload,
  type SyncPayload,
  type SyncRequiredPayload,
  type SyncResponsePayload,
} from '@syncline/contracts';
import { CONFIG, NATS, requestJson } from '@syncline/platform';
import { z } from 'zod';
import type { GatewayConfig } from '../config.js';
import type { Connection } from '../connections/connection.js';
import { StreamPositionService } from '../fanout/stream-position.service.js';
import { ReplayService } from '../resume/replay.service.js';

const DEFAULT_LIMIT = 500;

export type SyncAnswer =
  | { readonly type: 'sync_response'; readonly payload: SyncResponsePayload }
  | { readonly type: 'sync_required'; readonly payload: SyncRequiredPayload };

/** Where a multi-page snapshot is: the last entity id sent, and the stream position it started at. */
interface SnapshotPage {
  readonly after: string;
  readonly seq: number;
}

/**
 * `sync`: changes since a cursor (or one entity's since a version) from the change log, or a
 * snapshot of the current state, paged. The workers answer from PostgreSQL.
 */
@Injectable()
export class SyncService {
  private readonly subjects: Subjects;

  constructor(
    private readonly positions: StreamPositionService,
    private readonly replays: ReplayService,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) private readonly config: GatewayConfig,
  ) {
    this.subjects = new Subjects(config.SYNC_NAMESPACE);
  }

  /** The WebSocket `sync` frame: the answer goes back on the connection. */
  async sync(connection: Connection, payload: SyncPayload, id: string | undefined): Promise<void> {
    const answer = await this.answer(connection.tenant, payload);
    if (answer.type === 'sync_required') connection.send('sync_required', answer.payload, id);
    else connection.send('sync_response', answer.payload, id);
  }

  /** A `sync` request of a tenant, whichever edge it came from (WebSocket or HTTP). */
  answer(tenant: string, payload: SyncPayload): Promise<SyncAnswer> {
    return payload.snapshot ? this.snapshot(tenant, payload) : this.changes(tenant, payload);
  }

  /**
   * Changes since a cursor come from CHANGES, the same ordered feed subscriptions replay, as far
   * back as the stream reaches; older ones come from the change log in PostgreSQL, down to the
   * retention horizon. One entity's changes since a version always come from the change log.
   */
  private async changes(tenant: string, payload: SyncPayload): Promise<SyncAnswer> {
    const limit = payload.limit ?? DEFAULT_LIMIT;
    const { epoch, firstSeq } = await this.positions.state();
    let afterSeq = 0;
    if (payload.since !== undefined) {
      const position = SyncPositions.parse(payload.since);
      if (!position) throw new SynclineError(ErrorCode.INVALID_CURSOR, `invalid cursor "${payload.since}"`);
      if (position.epoch !== epoch) {
        return {
          type: 'sync_required',
          payload: { entityType: payload.entityType, reason: 'epoch_changed', cursor: payload.since },
        };
      }
      afterSeq = position.seq;
    }
    let page: { changes: DeltaPayload[]; hasMore: boolean } | undefined;
    if (payload.entityId === undefined && afterSeq + 1 >= firstSeq) {
      page = await this.fromStream(tenant, payload.entityType, afterSeq, limit, epoch);
    } else {
      page = await this.fromChangeLog(tenant, payload, afterSeq, limit, epoch);
      if (!page) {
        // Retention removed changes after this cursor: what lies between is gone.
        return {
          type: 'sync_required',
          payload: { entityType: payload.entityType, reason: 'cursor_expired', cursor: payload.since ?? '' },
        };
      }
    }
    const lastSeq = page.changes.reduce((max, change) => Math.max(max, change.seq ?? 0), afterSeq);
    return {
      type: 'sync_response',
      payload: {
        mode: 'changes',
        entityType: payload.entityType,
        changes: page.changes,
        cursor: SyncPositions.format({ epoch, seq: lastSeq }),
        hasMore: page.hasMore,
      },
    };
  }

  private async fromStream(
    tenant: string,
    entityType: string,
    afterSeq: number,
    limit: number,
    epoch: string,
  ): Promise<{ changes: DeltaPayload[]; hasMore: boolean }> {
    const { changes, hasMore } = await this.replays.page(tenant, entityType, afterSeq, limit);
    return {
      changes: changes.map((change) => ({
        ...(JSON.parse(change.body) as ChangeEvent),
        seq: change.seq,
        cursor: SyncPositions.format({ epoch, seq: change.seq }),
      })),
      hasMore,
    };
  }

  /** A page of the change log, or `undefined` when retention already removed part of it. */
  private async fromChangeLog(
    tenant: string,
    payload: SyncPayload,
    afterSeq: number,
    limit: number,
    epoch: string,
  ): Promise<{ changes: DeltaPayload[]; hasMore: boolean } | undefined> {
    const result = await requestJson(
      this.nats,
      this.subjects.query(QueryName.changes),
      {
        tenant,
        entityType: payload.entityType,
        limit,
        ...(payload.entityId === undefined
          ? { afterSeq }
          : { entityId: payload.entityId, afterVersion: payload.sinceVersion ?? 0 }),
      },
      changesQueryResultSchema,
      { timeoutMs: this.config.REQUEST_TIMEOUT_MS },
    );
    if (payload.entityId === undefined && afterSeq < result.prunedThroughSeq) return undefined;
    return {
      changes: result.changes.map(({ seq, ...change }) =>
        seq === null ? change : { ...change, seq, cursor: SyncPositions.format({ epoch, seq }) },
      ),
      hasMore: result.hasMore,
    };
  }

  private async snapshot(tenant: string, payload: SyncPayload): Promise<SyncAnswer> {
    const limit = payload.limit ?? DEFAULT_LIMIT;
    const page = payload.pageToken === undefined ? undefined : decodePageToken(payload.pageToken);
    // The position is taken before the first read: a subscription from it misses nothing the
    // snapshot did not include, and at worst repeats a change the client then ignores by version.
    const { epoch, lastSeq } = await this.positions.state();
    const seq = page?.seq ?? lastSeq;
    const result = await requestJson(
      this.nats,
      this.subjects.query(QueryName.snapshot),
      {
        tenant,
        entityType: payload.entityType,
        limit,
        ...(payload.entityId === undefined ? {} : { entityId: payload.entityId }),
        ...(page ? { afterEntityId: page.after } : {}),
      },
      snapshotQueryResultSchema,
      { timeoutMs: this.config.REQUEST_TIMEOUT_MS },
    );
    const last = result.entities[result.entities.length - 1];
    return {
      type: 'sync_response',
      payload: {
        mode: 'snapshot',
        entityType: payload.entityType,
        entities: result.entities,
        cursor: SyncPositions.format({ epoch, seq }),
        hasMore: result.hasMore,
        ...(result.hasMore && last ? { nextPageToken: encodePageToken({ after: last.entityId, seq }) } : {}),
      },
    };
  }
}

function encodePageToken(page: SnapshotPage): string {
  return Buffer.from(JSON.stringify(page)).toString('base64url');
}

/** A page token comes back from the client: it is outside input like any other. */
const snapshotPageSchema = z.strictObject({
  after: entityIdSchema,
  seq: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
});

function decodePageToken(token: string): SnapshotPage {
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    decoded = undefined;
  }
  const page = snapshotPageSchema.safeParse(decoded);
  if (!page.success) throw new SynclineError(ErrorCode.VALIDATION_FAILED, 'invalid pageToken');
  return page.data;
}
