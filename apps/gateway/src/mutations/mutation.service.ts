import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  ErrorCode,
  Header,
  HybridLogicalClock,
  MessageIds,
  QueryName,
  Subjects,
  SynclineError,
  encodeEntityIdToken,
  outcomeQueryResultSchema,
  type MutatePayload,
  type MutationMessage,
  type OutcomeMessage,
} from '@syncline/contracts';
import {
  CONFIG,
  LOGGER,
  NATS,
  TELEMETRY,
  SpanKind,
  context,
  encodeJson,
  endSpan,
  headersFrom,
  injectTraceContext,
  requestJson,
  StreamPublisher,
  trace,
  type Logger,
  type Telemetry,
} from '@syncline/platform';
import type { GatewayConfig } from '../config.js';
import type { Connection } from '../connections/connection.js';
import { Overload } from '../limits/overload.js';
import { PrometheusMetrics } from '../telemetry/prometheus-metrics.js';
import { OutcomeAcks } from './outcome-acks.js';
import { PublishCoalescer } from './publish-coalescing.js';

/** Who a mutation comes from: a WebSocket connection, or an HTTP request (no connection). */
export interface MutationAuthor {
  readonly tenant: string;
  readonly userId: string;
  readonly connectionId?: string;
}

/**
 * `mutate`: validates what the schema cannot (subject-safe id, clock skew), stores the mutation
 * in MUTATIONS and acks `accepted` only once JetStream confirmed storage. The message id makes a
 * resend within the duplicate window a no-op; for a resend the gateway looks up the recorded
 * outcome so the client still learns what became of its mutation.
 */
@Injectable()
export class MutationService implements OnApplicationShutdown {
  private readonly stream: StreamPublisher;
  private readonly subjects: Subjects;
  private readonly clock: HybridLogicalClock;
  private readonly publishes = new PublishCoalescer();

  constructor(
    private readonly outcomeAcks: OutcomeAcks,
    private readonly overload: Overload,
    private readonly prometheus: PrometheusMetrics,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) private readonly config: GatewayConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(TELEMETRY) private readonly telemetry: Telemetry,
  ) {
    this.stream = new StreamPublisher(nats, config.REQUEST_TIMEOUT_MS);
    this.subjects = new Subjects(config.SYNC_NAMESPACE);
    this.clock = new HybridLogicalClock(config.INSTANCE_ID ?? 'gateway');
  }

  onApplicationShutdown(): void {
    this.stream.close();
  }

  /** The WebSocket `mutate` frame: `accepted` once stored, the outcome later on the same connection. */
  async mutate(
    connection: Connection,
    payload: MutatePayload,
    id: string | undefined,
    receivedAt: number,
  ): Promise<void> {
    // Recorded before publishing: the outcome can come back before the publish ack does.
    this.outcomeAcks.expect(connection.id, payload.mutationId, id);
    let stored: { duplicate: boolean };
    try {
      stored = await this.store(
        { tenant: connection.tenant, userId: connection.principal.userId, connectionId: connection.id },
        payload,
        receivedAt,
      );
    } catch (error) {
      this.outcomeAcks.forget(connection.id, payload.mutationId);
      throw error;
    }
    const ref = { mutationId: payload.mutationId, entityType: payload.entityType, entityId: payload.entityId };
    connection.send('ack', { status: 'accepted', ...ref }, id);
    if (stored.duplicate) void this.answerResend(connection, payload.mutationId, id);
  }

  /**
   * Stores a mutation in MUTATIONS, for any edge. Resolves once JetStream confirmed it, telling
   * whether it was a resend the duplicate window dropped. Without a `connectionId` (HTTP) no
   * outcome is routed back; the change itself shows in the change feed and history.
   */
  async store(author: MutationAuthor, payload: MutatePayload, receivedAt: number): Promise<{ duplicate: boolean }> {
    this.overload.admit();
    encodeEntityIdToken(payload.entityId);
    const skew = this.clock.skewOf(payload.hlc);
    if (skew > this.config.MAX_CLOCK_SKEW_MS) {
      throw new SynclineError(ErrorCode.CLOCK_SKEW, `hlc is ${skew} ms ahead of the server clock`);
    }
    const message: MutationMessage = {
      mutationId: payload.mutationId,
      tenant: author.tenant,
      userId: author.userId,
      clientId: payload.clientId ?? author.connectionId ?? author.userId,
      entityType: payload.entityType,
      entityId: payload.entityId,
      op: payload.op,
      ...(payload.data === undefined ? {} : { data: payload.data }),
      baseVersion: payload.baseVersion,
      vectorClock: payload.vectorClock,
      hlc: payload.hlc,
    };
    const span = this.telemetry.tracer.startSpan('mutation.receive', {
      kind: SpanKind.SERVER,
      attributes: { 'sync.mutation_id': payload.mutationId, 'sync.entity_type': payload.entityType },
    });
    try {
      const headers = headersFrom({
        [Header.gatewayId]: this.config.INSTANCE_ID,
        [Header.connectionId]: author.connectionId,
        [Header.receivedAt]: String(receivedAt),
      });
      injectTraceContext(headers, trace.setSpan(context.active(), span));
      this.overload.sent();
      const ack = await this.publishes
        .run(() =>
          this.stream.publish(
            this.subjects.mutation(author.tenant, payload.entityType, payload.entityId),
            encodeJson(message),
            {
              msgID: MessageIds.mutation(author.tenant, payload.mutationId),
              headers,
            },
          ),
        )
        .finally(() => this.overload.confirmed());
      endSpan(span);
      this.prometheus.mutations.inc({ edge: author.connectionId ? 'websocket' : 'http', result: 'accepted' });
      return { duplicate: ack.duplicate };
    } catch (error) {
      endSpan(span, error);
      if (error instanceof SynclineError) throw error;
      this.logger.warn({ err: error }, 'could not store a mutation');
      throw new SynclineError(ErrorCode.UNAVAILABLE, 'the mutation could not be stored; resend it', {
        retryAfterMs: 1000,
      });
    }
  }

  /**
   * A resend JetStream dropped as a duplicate. Its first copy may still be queued, or done: ask
   * the workers for the recorded outcome until there is one.
   */
  private async answerResend(connection: Connection, mutationId: string, id: string | undefined): Promise<void> {
    const answered = () => !connection.isOpen || !connection.awaitingOutcome.has(mutationId);
    const outcome = await this.recordedOutcome(connection.tenant, mutationId, answered);
    if (outcome && !answered()) connection.send('ack', { ...outcome, duplicate: true }, id);
    this.outcomeAcks.forget(connection.id, mutationId);
  }

  /**
   * What became of a stored mutation, asking the workers (with backoff, about 30 s in all) until
   * they recorded it; undefined if they have not, or once `stop()` says the answer is no longer wanted.
   */
  async recordedOutcome(
    tenant: string,
    mutationId: string,
    stop: () => boolean = () => false,
  ): Promise<Omit<OutcomeMessage, 'connectionId'> | undefined> {
    for (let attempt = 0, delay = 50; attempt < 40 && !stop(); attempt++, delay = Math.min(delay * 2, 1000)) {
      try {
        const result = await requestJson(
          this.nats,
          this.subjects.query(QueryName.outcome),
          { tenant, mutationId },
          outcomeQueryResultSchema,
          { timeoutMs: this.config.REQUEST_TIMEOUT_MS },
        );
        if (result.found) return result.outcome;
      } catch (error) {
        this.logger.debug({ err: error }, 'outcome lookup failed; retrying');
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
    return undefined;
  }
}
