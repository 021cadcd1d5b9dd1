import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstreamManager, JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
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
  StreamPublisher,
  type Logger,
  type Telemetry,
} from '@syncline/platform';
import type { SyncWorkerConfig } from '../config.js';
import type { ChangeRow } from '../entities/change-row.js';
import { keyOf, type EntityKey } from '../entities/entity-key.js';
import { FeedPositions } from './feed-positions.js';
import { OutboxRepository, type ChangePosition } from './outbox.repository.js';
import { lastStoredChange, sequenceStoredAfter, type FeedEnd } from './stored-change.js';

/** Publications recorded in PostgreSQL together, at most this often. */
const RECORD_INTERVAL_MS = 20;
/** Changes committed and not yet published beyond which the worker stops fetching mutations. */
const MAX_UNPUBLISHED = 20_000;

/**
 * Brings committed changes to CHANGES, in version order per entity, exactly once.
 *
 * Each change is published with a message id derived from its entity version, so a second
 * publication (a retry, the relay after a crash, two workers racing) is dropped by JetStream.
 * Each also states the stream sequence of its entity's previous version
 * (`expect.lastSubjectSequence`): a version can only land right after the one before it.
 * Within this worker, publications of one entity run one after another. The predecessor's
 * sequence comes from what this worker published last; otherwise from the stream itself, and
 * when versions before the change are not there yet, they are published first, from the log.
 *
 * Positions and finished outbox entries are recorded in PostgreSQL in the background, in bulk:
 * until then a batch looks unfinished, and a relay that publishes it again gets the original
 * sequences back.
 */
@Injectable()
export class ChangePublisher implements OnApplicationShutdown {
  private readonly stream: StreamPublisher;
  private jsm: Promise<JetStreamManager> | undefined;
  private readonly subjects: Subjects;
  private readonly positions = new FeedPositions(50_000);
  /** The publication in progress per entity; the next one for that entity waits for it. */
  private readonly inProgress = new Map<string, Promise<boolean>>();
  private unpublished = 0;
  private unrecorded: ChangePosition[] = [];
  private finished: number[] = [];
  private recordTimer: NodeJS.Timeout | undefined;
  private recording: Promise<void> = Promise.resolve();

  constructor(
    private readonly outbox: OutboxRepository,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) private readonly config: SyncWorkerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(TELEMETRY) private readonly telemetry: Telemetry,
  ) {
    this.stream = new StreamPublisher(nats, config.REQUEST_TIMEOUT_MS);
    this.subjects = new Subjects(config.SYNC_NAMESPACE);
  }

  /**
   * Publishes what a batch committed. Failures are logged, not thrown: the changes stay in the
   * outbox and the relay publishes them later; the mutations are committed either way.
   */
  async publishCommitted(changes: readonly ChangeRow[], outboxId: number | undefined): Promise<void> {
    this.unpublished += changes.length;
    const results = await Promise.all(
      groupByEntity(changes).map((group) =>
        this.inEntityOrder(keyOf(group[0] as ChangeRow), () => this.publishGroup(group)),
      ),
    );
    this.unpublished -= changes.length;
    if (outboxId !== undefined && results.every(Boolean)) this.finish(outboxId);
  }

  /** Publishes an entity's changes from `fromVersion` on, from the log (the relay's path). */
  relayEntity(key: EntityKey, fromVersion: number): Promise<boolean> {
    return this.inEntityOrder(keyOf(key), async () => {
      const end = await this.feedEnd(key);
      await this.publishFromLog(key, end ? end.version + 1 : fromVersion, end?.seq ?? 0);
    });
  }

  /** Records that every change of an outbox entry is in CHANGES. */
  finish(outboxId: number): void {
    this.finished.push(outboxId);
    this.scheduleRecording();
  }

  /** True while this worker is publishing changes of the entity. */
  isPublishing(key: EntityKey): boolean {
    return this.inProgress.has(keyOf(key));
  }

  /** True when commits run so far ahead of publishing that fetching should wait. */
  isBehind(): boolean {
    return this.unpublished > MAX_UNPUBLISHED;
  }

  /** Resolves once every publication started so far has ended and been recorded. */
  async settled(): Promise<void> {
    while (this.inProgress.size > 0) await Promise.allSettled(this.inProgress.values());
    await this.record();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.settled();
    this.stream.close();
  }

  /**
   * Runs `publish` after the entity's previous publication, or at once when there is none, so the
   * first publications of a batch leave in the same write as its acks and outcomes. Resolves
   * false if it failed.
   */
  private inEntityOrder(key: string, publish: () => Promise<void>): Promise<boolean> {
    const previous = this.inProgress.get(key);
    const next = (previous ? previous.then(publish) : publish()).then(
      () => true,
      (error: unknown) => {
        this.positions.forget(key);
        this.logger.warn(
          { err: error, entity: key.replaceAll('\u0000', '/') },
          'publish failed; the outbox relay will retry',
        );
        return false;
      },
    );
    this.inProgress.set(key, next);
    void next.finally(() => {
      if (this.inProgress.get(key) === next) this.inProgress.delete(key);
    });
    return next;
  }

  private async publishGroup(group: readonly ChangeRow[]): Promise<void> {
    const first = group[0] as ChangeRow;
    let expected = this.positions.seqOf(keyOf(first), first.version - 1);
    let rows = group;
    if (expected === undefined) {
      const end = await this.feedEnd(first);
      if (end && end.version < first.version - 1) return this.publishFromLog(first, end.version + 1, end.seq);
      // Versions up to the stream's end are in it already (published by the relay or another worker).
      if (end) rows = group.filter((row) => row.version > end.version);
      expected = end?.seq ?? 0;
    }
    for (const row of rows) {
      try {
        expected = await this.publishRow(row, expected);
      } catch (error) {
        if (!isWrongLastSequence(error)) throw error;
        // Another worker published a version of this entity meanwhile: let the stream say where it ends.
        this.positions.forget(keyOf(row));
        const end = await this.feedEnd(row);
        return this.publishFromLog(row, end ? end.version + 1 : row.version, end?.seq ?? 0);
      }
    }
  }

  private async publishFromLog(key: EntityKey, fromVersion: number, afterSeq: number): Promise<void> {
    let expected = afterSeq;
    for (const row of await this.outbox.changesFrom(key, fromVersion)) expected = await this.publishRow(row, expected);
  }

  private async feedEnd(key: EntityKey): Promise<FeedEnd | undefined> {
    const subject = this.subjects.change(key.tenant, key.entityType, key.entityId);
    return lastStoredChange(await this.manager(), this.config.CHANGES_STREAM, subject);
  }

  private manager(): Promise<JetStreamManager> {
    this.jsm ??= jetstreamManager(this.nats, { timeout: this.config.REQUEST_TIMEOUT_MS });
    return this.jsm;
  }

  /**
   * Publishes one change and returns its stream sequence. A change that is already in the
   * stream (the same message id within the duplicate window) returns the original sequence.
   */
  private async publishRow(row: ChangeRow, expectedLastSeq: number): Promise<number> {
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
      const seq = await this.stream
        .publish(subject, encodeJson(changeEventOf(row)), {
          msgID,
          headers,
          expectLastSubjectSequence: expectedLastSeq,
        })
        .then(
          (ack) => ack.seq,
          async (error: unknown) => {
            if (!isWrongLastSequence(error)) throw error;
            const stored = await sequenceStoredAfter(await this.manager(), this.config.CHANGES_STREAM, {
              subject,
              predecessorSeq: expectedLastSeq,
              msgID,
            });
            if (stored === undefined) throw error;
            return stored;
          },
        );
      span.setAttribute('messaging.sequence', seq);
      endSpan(span);
      this.published(row, seq);
      return seq;
    } catch (error) {
      endSpan(span, error);
      throw error;
    }
  }

  private published(row: ChangeRow, seq: number): void {
    this.positions.advance(keyOf(row), { version: row.version, seq });
    this.unrecorded.push({
      tenant: row.tenant,
      entityType: row.entityType,
      seq,
      entityId: row.entityId,
      version: row.version,
    });
    this.scheduleRecording();
  }

  private scheduleRecording(): void {
    this.recordTimer ??= setTimeout(() => {
      this.recordTimer = undefined;
      void this.record();
    }, RECORD_INTERVAL_MS);
  }

  private record(): Promise<void> {
    const positions = this.unrecorded;
    const finished = this.finished;
    this.unrecorded = [];
    this.finished = [];
    this.recording = this.recording.then(() =>
      this.outbox.recordPublished(positions, finished).catch((error: unknown) => {
        // Unrecorded, the batches stay in the outbox: the relay publishes them again (JetStream drops
        // the repeats) and records them then.
        this.logger.warn({ err: error, count: positions.length }, 'could not record published changes');
      }),
    );
    return this.recording;
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

function groupByEntity(changes: readonly ChangeRow[]): ChangeRow[][] {
  const groups = new Map<string, ChangeRow[]>();
  for (const change of changes) {
    const key = keyOf(change);
    const group = groups.get(key);
    if (group) group.push(change);
    else groups.set(key, [change]);
  }
  return [...groups.values()].map((group) => group.sort((a, b) => a.version - b.version));
}
