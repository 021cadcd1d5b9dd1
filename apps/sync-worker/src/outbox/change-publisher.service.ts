import { Inject, Injectable } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstream, JetStreamApiCodes, JetStreamApiError, type JetStreamClient } from '@nats-io/jetstream';
import { Header, MessageIds, Subjects, type ChangeEvent, type MutationOp } from '@syncline/contracts';
import {
  CONFIG,
  LOGGER,
  NATS,
  TELEMETRY,
  SpanKind,
  contextFromTraceparent,
  encodeJson,
  endSpan,
  headersFrom,
  injectTraceContext,
  type Logger,
  type Telemetry,
} from '@syncline/platform';
import type { SyncWorkerConfig } from '../config.js';
import type { CommittedChange } from '../mutations/batch-processor.service.js';
import { keyOf, type ChangeRow, type EntityKey } from '../mutations/entity-store.repository.js';
import { OutboxRepository, type PublishedChange } from './outbox.repository.js';

/**
 * Brings committed changes to CHANGES, in version order per entity, exactly once.
 *
 * Each change is published with a message id derived from its entity version, so a second
 * publication (a retry, the relay after a crash, two workers racing) is dropped by JetStream.
 * Each also states the stream sequence of its entity's previous version
 * (`expect.lastSubjectSequence`): a version can only land right after the one before it.
 * When the previous version is not known to be published, the entity is published from the
 * outbox instead, oldest unpublished version first.
 */
@Injectable()
export class ChangePublisher {
  private readonly js: JetStreamClient;
  private readonly subjects: Subjects;

  constructor(
    private readonly outbox: OutboxRepository,
    @Inject(NATS) nats: NatsConnection,
    @Inject(CONFIG) private readonly config: SyncWorkerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(TELEMETRY) private readonly telemetry: Telemetry,
  ) {
    this.js = jetstream(nats, { timeout: config.REQUEST_TIMEOUT_MS });
    this.subjects = new Subjects(config.SYNC_NAMESPACE);
  }

  /**
   * Publishes what a batch committed. Failures are logged, not thrown: the changes stay in the
   * outbox and the relay publishes them later; the mutations are committed either way.
   */
  async publishCommitted(committed: readonly CommittedChange[]): Promise<Map<string, number>> {
    const seqs = new Map<string, number>();
    const published: PublishedChange[] = [];
    await Promise.all(
      groupByEntity(committed).map(async (group) => {
        try {
          published.push(...(await this.publishChain(group)));
        } catch (error) {
          this.logger.warn(
            { err: error, entity: group[0]?.row.entityId },
            'publish failed; the outbox relay will retry',
          );
        }
      }),
    );
    for (const change of published) seqs.set(versionKey(change, change.version), change.seq);
    await this.outbox.markPublished(published).catch((error: unknown) => {
      this.logger.warn({ err: error }, 'could not record published sequences; the relay will');
    });
    return seqs;
  }

  /** Publishes every unpublished change of an entity from the outbox, oldest first. */
  async relayEntity(key: EntityKey): Promise<PublishedChange[]> {
    const { rows, previousSeq } = await this.outbox.unpublishedOf(key);
    const published: PublishedChange[] = [];
    let expected = previousSeq;
    for (const row of rows) {
      const seq = await this.publishRow(row, expected);
      published.push({ ...key, version: row.version, seq });
      expected = seq;
    }
    await this.outbox.markPublished(published);
    return published;
  }

  private async publishChain(group: readonly CommittedChange[]): Promise<PublishedChange[]> {
    const first = group[0] as CommittedChange;
    const { publishedBefore } = first;
    if (publishedBefore.version !== first.row.version - 1) return this.relayEntity(first.row);
    const published: PublishedChange[] = [];
    let expected: number | undefined = publishedBefore.seq;
    for (const { row } of group) {
      try {
        expected = await this.publishRow(row, expected);
      } catch (error) {
        if (!isWrongLastSequence(error)) throw error;
        // Someone else published an earlier version meanwhile: let the outbox order it.
        return this.relayEntity(row);
      }
      published.push({ ...entityKey(row), version: row.version, seq: expected });
    }
    return published;
  }

  /**
   * Publishes one change and returns its stream sequence. A change that is already in the
   * stream (the same message id within the duplicate window) returns the original sequence.
   */
  private async publishRow(row: ChangeRow, expectedLastSeq: number | undefined): Promise<number> {
    const parent = contextFromTraceparent(row.traceparent);
    const span = this.telemetry.tracer.startSpan('changes.publish', { kind: SpanKind.PRODUCER }, parent);
    try {
      const headers = headersFrom({
        [Header.mutationId]: row.mutationId,
        [Header.status]: row.status,
        [Header.version]: String(row.version),
        [Header.gatewayId]: row.gatewayId ?? undefined,
        [Header.connectionId]: row.connectionId ?? undefined,
        [Header.receivedAt]: row.receivedAt === null ? undefined : String(row.receivedAt),
      });
      injectTraceContext(headers, contextFromTraceparent(row.traceparent));
      const ack = await this.js.publish(
        this.subjects.change(row.tenant, row.entityType, row.entityId),
        encodeJson(changeEventOf(row)),
        {
          msgID: MessageIds.change(row.tenant, row.entityType, row.entityId, row.version),
          headers,
          ...(expectedLastSeq === undefined ? {} : { expect: { lastSubjectSequence: expectedLastSeq } }),
        },
      );
      span.setAttribute('messaging.sequence', ack.seq);
      endSpan(span);
      return ack.seq;
    } catch (error) {
      endSpan(span, error);
      throw error;
    }
  }
}

/** The CHANGES body: the client-facing delta, without what only the stream knows (seq, cursor). */
export function changeEventOf(row: ChangeRow): ChangeEvent {
  return {
    entityType: row.entityType,
    entityId: row.entityId,
    version: row.version,
    op: row.op as MutationOp,
    deleted: row.deleted,
    changes: row.changes as ChangeEvent['changes'],
    vectorClock: row.vectorClock,
    timestamp: row.hlc,
  };
}

function isWrongLastSequence(error: unknown): boolean {
  return (
    error instanceof JetStreamApiError &&
    (error.code === JetStreamApiCodes.StreamWrongLastSequence ||
      error.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

function entityKey(row: ChangeRow): EntityKey {
  return { tenant: row.tenant, entityType: row.entityType, entityId: row.entityId };
}

export function versionKey(key: EntityKey, version: number): string {
  return `${keyOf(key)}\u0000${version}`;
}

function groupByEntity(committed: readonly CommittedChange[]): CommittedChange[][] {
  const groups = new Map<string, CommittedChange[]>();
  for (const change of committed) {
    const key = keyOf(change.row);
    const group = groups.get(key);
    if (group) group.push(change);
    else groups.set(key, [change]);
  }
  return [...groups.values()].map((group) => group.sort((a, b) => a.row.version - b.row.version));
}
