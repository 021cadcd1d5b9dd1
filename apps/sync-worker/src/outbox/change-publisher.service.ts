import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  jetstream,
  jetstreamManager,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
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
import { FeedPositions, type FeedPosition } from './feed-positions.js';
import { OutboxRepository, type PublishedChange } from './outbox.repository.js';
import { sequenceStoredAfter } from './stored-change.js';

/** Publications recorded in PostgreSQL together, at most this often. */
const MARK_INTERVAL_MS = 20;

/**
 * Brings committed changes to CHANGES, in version order per entity, exactly once.
 *
 * Each change is published with a message id derived from its entity version, so a second
 * publication (a retry, the relay after a crash, two workers racing) is dropped by JetStream.
 * Each also states the stream sequence of its entity's previous version
 * (`expect.lastSubjectSequence`): a version can only land right after the one before it.
 * Within this worker, publications of one entity run one after another; when the previous
 * version's sequence is unknown, the entity is published from the outbox instead, oldest
 * unpublished version first.
 *
 * Sequences are recorded in the change log in the background, batched: until then a change
 * looks unpublished, and a relay that publishes it again gets the original sequence back.
 */
@Injectable()
export class ChangePublisher implements OnApplicationShutdown {
  private readonly js: JetStreamClient;
  private jsm: Promise<JetStreamManager> | undefined;
  private readonly subjects: Subjects;
  private readonly positions = new FeedPositions(50_000);
  /** The publication in progress per entity; the next one for that entity waits for it. */
  private readonly inProgress = new Map<string, Promise<unknown>>();
  private unmarked: PublishedChange[] = [];
  private markTimer: NodeJS.Timeout | undefined;
  private marking: Promise<void> = Promise.resolve();

  constructor(
    private readonly outbox: OutboxRepository,
    @Inject(NATS) private readonly nats: NatsConnection,
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
  async publishCommitted(committed: readonly CommittedChange[]): Promise<void> {
    await Promise.all(
      groupByEntity(committed).map((group) => this.inEntityOrder(keyOf(group[0]!.row), () => this.publishGroup(group))),
    );
  }

  /** True while this worker is publishing changes of the entity. */
  isPublishing(key: EntityKey): boolean {
    return this.inProgress.has(keyOf(key));
  }

  /** Publishes every unpublished change of an entity from the outbox, oldest first. */
  relayEntity(key: EntityKey): Promise<void> {
    return this.inEntityOrder(keyOf(key), () => this.publishFromOutbox(key));
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.allSettled(this.inProgress.values());
    await this.flushMarks();
  }

  private inEntityOrder(key: string, publish: () => Promise<void>): Promise<void> {
    const previous = this.inProgress.get(key) ?? Promise.resolve();
    const next = previous.then(publish).catch((error: unknown) => {
      this.positions.forget(key);
      this.logger.warn(
        { err: error, entity: key.replaceAll('\u0000', '/') },
        'publish failed; the outbox relay will retry',
      );
    });
    this.inProgress.set(key, next);
    void next.finally(() => {
      if (this.inProgress.get(key) === next) this.inProgress.delete(key);
    });
    return next;
  }

  private async publishGroup(group: readonly CommittedChange[]): Promise<void> {
    const first = group[0] as CommittedChange;
    const key = keyOf(first.row);
    let expected = this.expectedBefore(key, first);
    if (expected === undefined) return this.publishFromOutbox(first.row);
    for (const { row } of group) {
      try {
        expected = await this.publishRow(row, expected);
      } catch (error) {
        if (!isWrongLastSequence(error)) throw error;
        // Another worker published a version of this entity meanwhile: let the outbox order it.
        this.positions.forget(key);
        return this.publishFromOutbox(row);
      }
      this.published(row, row.version, expected);
    }
  }

  /** The stream sequence the first change of a group must follow, when it is known. */
  private expectedBefore(key: string, first: CommittedChange): number | undefined {
    const predecessor = first.row.version - 1;
    const known = this.positions.get(key);
    if (known?.version === predecessor) return known.seq;
    if (first.previous.version === predecessor) return first.previous.seq;
    return undefined;
  }

  private async publishFromOutbox(key: EntityKey): Promise<void> {
    const { rows, previousSeq } = await this.outbox.unpublishedOf(key);
    const known: FeedPosition | undefined = this.positions.get(keyOf(key));
    let expected = previousSeq ?? (known && known.version === (rows[0]?.version ?? 0) - 1 ? known.seq : undefined);
    for (const row of rows) {
      expected = await this.publishRow(row, expected);
      this.published(row, row.version, expected);
    }
  }

  private published(key: EntityKey, version: number, seq: number): void {
    this.positions.advance(keyOf(key), { version, seq });
    this.unmarked.push({ tenant: key.tenant, entityType: key.entityType, entityId: key.entityId, version, seq });
    this.markTimer ??= setTimeout(() => {
      this.markTimer = undefined;
      void this.flushMarks();
    }, MARK_INTERVAL_MS);
  }

  private flushMarks(): Promise<void> {
    const batch = this.unmarked;
    this.unmarked = [];
    this.marking = this.marking.then(() =>
      this.outbox.markPublished(batch).catch((error: unknown) => {
        // Left unmarked, these are published again by the relay, which gets their sequences back.
        this.logger.warn({ err: error, count: batch.length }, 'could not record published sequences');
      }),
    );
    return this.marking;
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
      injectTraceContext(headers, parent);
      const subject = this.subjects.change(row.tenant, row.entityType, row.entityId);
      const msgID = MessageIds.change(row.tenant, row.entityType, row.entityId, row.version);
      const seq = await this.js
        .publish(subject, encodeJson(changeEventOf(row)), {
          msgID,
          headers,
          ...(expectedLastSeq === undefined ? {} : { expect: { lastSubjectSequence: expectedLastSeq } }),
        })
        .then(
          (ack) => ack.seq,
          async (error: unknown) => {
            if (expectedLastSeq === undefined || !isWrongLastSequence(error)) throw error;
            const stored = await this.storedAfter(subject, expectedLastSeq, msgID);
            if (stored === undefined) throw error;
            return stored;
          },
        );
      span.setAttribute('messaging.sequence', seq);
      endSpan(span);
      return seq;
    } catch (error) {
      endSpan(span, error);
      throw error;
    }
  }

  private async storedAfter(subject: string, predecessorSeq: number, msgID: string): Promise<number | undefined> {
    this.jsm ??= jetstreamManager(this.nats, { timeout: this.config.REQUEST_TIMEOUT_MS });
    return sequenceStoredAfter(await this.jsm, this.config.CHANGES_STREAM, { subject, predecessorSeq, msgID });
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
