import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type ConsumerMessages,
  type JsMsg,
} from '@nats-io/jetstream';
import {
  Header,
  HybridLogicalClock,
  Subjects,
  WORKER_CONSUMER,
  findUnsafeJson,
  mutationMessageSchema,
  type MutationMessage,
} from '@syncline/contracts';
import {
  CONFIG,
  LOGGER,
  logConsumerStatus,
  NATS,
  TELEMETRY,
  SpanKind,
  decodeJson,
  endSpan,
  extractTraceContext,
  trace,
  traceparentOf,
  type Logger,
  type Span,
  type Telemetry,
} from '@syncline/platform';
import type { SyncWorkerConfig } from '../config.js';
import { ChangePublisher } from '../outbox/change-publisher.service.js';
import { WorkerMetrics } from '../telemetry/worker-metrics.js';
import { OutcomeNotifier } from '../outcomes/outcome-notifier.js';
import { BatchProcessor } from './batch-processor.service.js';
import { failureKind, postgresErrorOf } from './failure-kind.js';
import type { IncomingMutation } from './incoming-mutation.js';
import { RejectedMessageRepository } from './rejected-message.repository.js';

interface Delivery {
  readonly msg: JsMsg;
  readonly incoming: IncomingMutation;
  readonly span: Span;
}

/**
 * The JetStream edge of the worker. Messages arrive continuously from the shared durable
 * consumer; whatever has arrived while the previous batch was committing forms the next batch,
 * so a quiet system commits one mutation at a time (low latency) and a busy one commits
 * hundreds per transaction (high throughput). Only this class acks, naks or terminates.
 */
@Injectable()
export class MutationConsumer implements OnApplicationBootstrap, OnApplicationShutdown {
  private messages: ConsumerMessages | undefined;
  private readonly waiting: JsMsg[] = [];
  private draining: Promise<void> | undefined;
  /** Publications of committed batches still under way. */
  private readonly publishing = new Set<Promise<void>>();
  /** Only to measure how far ahead a mutation's timestamp is. */
  private readonly clock: HybridLogicalClock;
  private readonly subjects: Subjects;

  constructor(
    private readonly processor: BatchProcessor,
    private readonly publisher: ChangePublisher,
    private readonly outcomes: OutcomeNotifier,
    private readonly rejected: RejectedMessageRepository,
    private readonly metrics: WorkerMetrics,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) private readonly config: SyncWorkerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(TELEMETRY) private readonly telemetry: Telemetry,
  ) {
    this.subjects = new Subjects(config.SYNC_NAMESPACE);
    this.clock = new HybridLogicalClock(config.INSTANCE_ID ?? 'sync-worker');
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.ensureConsumer();
    const consumer = await jetstream(this.nats).consumers.get(
      this.config.MUTATIONS_STREAM,
      WORKER_CONSUMER.durableName,
    );
    this.messages = await consumer.consume({
      max_messages: this.config.WORKER_PREFETCH,
      expires: this.config.WORKER_PULL_EXPIRES_MS,
    });
    logConsumerStatus(this.messages, this.logger, { consumer: WORKER_CONSUMER.durableName });
    void this.receive(this.messages);
    this.logger.info(
      { stream: this.config.MUTATIONS_STREAM, consumer: WORKER_CONSUMER.durableName },
      'consuming mutations',
    );
  }

  /** Stops fetching, then finishes and acknowledges what it holds. */
  async onApplicationShutdown(): Promise<void> {
    await this.stopFetching();
    await this.draining;
    await Promise.all(this.publishing);
  }

  /**
   * `close()` unsubscribes at once, so the messages JetStream had already sent (in flight, or
   * unread in the socket) were dropped unacknowledged: redelivered only after the ack wait, behind
   * later mutations of their entities. Draining the subscription (unsubscribe, then a round trip
   * to the server) lets them arrive, and the iterator ends after the last one, as it does when the
   * whole connection drains. The library has no drain for one consumer: its subscription is internal.
   */
  private async stopFetching(): Promise<void> {
    const messages = this.messages;
    if (!messages) return;
    const subscription = (messages as { sub?: Subscription }).sub;
    let timer: NodeJS.Timeout | undefined;
    const drained =
      subscription !== undefined &&
      !subscription.isClosed() &&
      (await Promise.race([
        subscription.drain().then(
          () => true,
          () => false,
        ),
        // Bounded: without NATS the round trip never completes; then close as before.
        new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), this.config.REQUEST_TIMEOUT_MS);
        }),
      ]));
    clearTimeout(timer);
    if (drained) await messages.closed();
    else await messages.close();
  }

  /**
   * Creates the shared consumer, or brings the settings that may change (`WORKER_ACK_WAIT_MS`, or
   * a release's limits) up to date on the existing one: it outlives every worker.
   */
  private async ensureConsumer(): Promise<void> {
    const jsm = await jetstreamManager(this.nats);
    const stream = this.config.MUTATIONS_STREAM;
    const name = WORKER_CONSUMER.durableName;
    const settings = {
      ack_wait: this.config.WORKER_ACK_WAIT_MS * 1_000_000,
      max_ack_pending: WORKER_CONSUMER.maxAckPending,
      max_deliver: WORKER_CONSUMER.maxDeliver,
    };
    const existing = await jsm.consumers.info(stream, name).catch(() => undefined);
    if (existing) {
      const current = existing.config;
      const stale = (Object.keys(settings) as (keyof typeof settings)[]).some((key) => current[key] !== settings[key]);
      if (stale) await jsm.consumers.update(stream, name, settings);
      return;
    }
    const config = {
      durable_name: name,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ...settings,
    };
    await jsm.consumers.add(stream, config).catch(async (error: unknown) => {
      // Another replica created it at the same moment.
      await jsm.consumers.info(stream, name).catch(() => {
        throw error;
      });
    });
  }

  private async receive(messages: ConsumerMessages): Promise<void> {
    for await (const msg of messages) {
      this.waiting.push(msg);
      this.draining ??= this.drain().finally(() => {
        this.draining = undefined;
      });
    }
  }

  private async drain(): Promise<void> {
    // Let the messages that arrived in the same tick join the batch.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.waiting.length > 0) {
      const batch = this.waiting.splice(0, this.config.WORKER_BATCH_SIZE);
      await this.handle(batch);
    }
  }

  private async handle(batch: readonly JsMsg[]): Promise<void> {
    const deliveries: Delivery[] = [];
    for (const msg of batch) {
      const delivery = this.decode(msg);
      if (delivery) deliveries.push(delivery);
    }
    if (deliveries.length > 0) await this.commit(deliveries);
  }

  /** Validates one message; one that can never succeed is terminated and recorded. */
  private decode(msg: JsMsg): Delivery | undefined {
    let body: unknown;
    try {
      body = decodeJson(msg.data);
    } catch {
      void this.reject(msg, 'not valid JSON');
      return undefined;
    }
    // The same safe-JSON rules as every edge: a backend service publishes here directly.
    const unsafe = findUnsafeJson(body);
    if (unsafe) {
      void this.reject(msg, `unsafe: ${unsafe}`);
      return undefined;
    }
    const parsed = mutationMessageSchema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      void this.reject(msg, `schema: ${issue?.path.join('.') || '(root)'}: ${issue?.message}`);
      return undefined;
    }
    const skew = this.clock.skewOf(parsed.data.hlc);
    if (skew > this.config.MAX_CLOCK_SKEW_MS) {
      void this.reject(msg, `clock skew: hlc is ${skew} ms ahead of the worker's clock`);
      return undefined;
    }
    if (!this.isOnOwnSubject(msg, parsed.data)) {
      void this.reject(msg, SUBJECT_MISMATCH);
      return undefined;
    }
    const producer = extractTraceContext(msg.headers);
    const span = this.telemetry.tracer.startSpan(
      'mutation.process',
      {
        kind: SpanKind.CONSUMER,
        attributes: { 'sync.mutation_id': parsed.data.mutationId, 'sync.entity_type': parsed.data.entityType },
      },
      producer,
    );
    const spanContext = trace.setSpan(producer, span);
    const receivedAt = Number(msg.headers?.get(Header.receivedAt));
    return {
      msg,
      span,
      incoming: {
        mutation: parsed.data,
        gatewayId: msg.headers?.get(Header.gatewayId) || null,
        connectionId: msg.headers?.get(Header.connectionId) || null,
        receivedAt: Number.isFinite(receivedAt) && receivedAt > 0 ? receivedAt : null,
        trace: spanContext,
        traceparent: traceparentOf(spanContext) ?? null,
      },
    };
  }

  /**
   * Isolation (I6) for backend services: NATS permissions allow a service a set of subjects, so
   * the subject, not the body, says which tenant and entity it may write. A body that names
   * another tenant, entity type or entity than its subject is refused.
   */
  private isOnOwnSubject(msg: JsMsg, mutation: MutationMessage): boolean {
    return msg.subject === this.subjects.mutation(mutation.tenant, mutation.entityType, mutation.entityId);
  }

  /**
   * Commits a batch and acknowledges it: from the commit on, the outbox owns its changes. Their
   * publication runs while the next batch commits; only a bounded number of batches may wait
   * for it, so a slow JetStream slows the worker down instead of filling its memory.
   */
  private async commit(
    deliveries: readonly Delivery[],
    checkLedger = deliveries.some((d) => d.msg.redelivered),
  ): Promise<void> {
    const startedAt = performance.now();
    let result;
    try {
      result = await this.processor.process(
        deliveries.map((d) => d.incoming),
        { checkLedger },
      );
    } catch (error) {
      // A mutation id already in the ledger: look it up this time.
      if (!checkLedger && isLedgerConflict(error)) return this.commit(deliveries, true);
      await this.recover(deliveries, error);
      return;
    }
    this.metrics.recordBatch(result.outcomes, startedAt);
    for (const { msg, span } of deliveries) {
      msg.ack();
      endSpan(span);
    }
    const publication = this.publisher
      .publishCommitted(result.committed)
      .then(() => this.outcomes.notify(result.outcomes))
      // Committed changes are in the outbox: the relay publishes what failed here. Nothing here
      // may end the process.
      .catch((error: unknown) => this.logger.error({ err: error }, 'publishing a committed batch failed'));
    this.publishing.add(publication);
    void publication.finally(() => this.publishing.delete(publication));
    while (this.publishing.size > MAX_BATCHES_PUBLISHING) await Promise.race(this.publishing);
  }

  /**
   * A batch failed. Bad data (PostgreSQL refused a value) is isolated by halving the batch
   * until the message at fault stands alone, and that one is terminated; anything else is
   * transient and the whole batch is retried later with backoff.
   */
  private async recover(deliveries: readonly Delivery[], error: unknown): Promise<void> {
    if (failureKind(error) === 'bad-data') {
      if (deliveries.length === 1) {
        const delivery = deliveries[0] as Delivery;
        const reason = `refused by the database: ${(error as Error).message}`;
        await this.reject(delivery.msg, reason);
        await this.answerRefusal(delivery, reason);
        endSpan(delivery.span, error);
        return;
      }
      const middle = Math.ceil(deliveries.length / 2);
      await this.commit(deliveries.slice(0, middle));
      await this.commit(deliveries.slice(middle));
      return;
    }
    this.logger.warn({ err: error, size: deliveries.length }, 'batch failed; will be redelivered');
    for (const { msg, span } of deliveries) {
      msg.nak(retryDelayMs(msg.info.deliveryCount));
      endSpan(span, error);
    }
  }

  /** The author was told `accepted`: it now learns the mutation was refused, and rolls back. */
  private async answerRefusal({ incoming }: Delivery, reason: string): Promise<void> {
    try {
      const current = await this.rejected.refuse(incoming.mutation);
      this.outcomes.notify([{ incoming, status: 'rejected', ...current, duplicate: false, reason }]);
    } catch (error) {
      this.logger.error({ err: error }, 'could not record a refused mutation');
    }
  }

  private async reject(msg: JsMsg, reason: string): Promise<void> {
    try {
      await this.rejected.record(this.config.MUTATIONS_STREAM, msg.seq, msg.subject, reason, msg.data);
      // Without a reason: nats-server before 2.10.4 ignores `+TERM <reason>` and would redeliver
      // the message after every ack wait. The reason is in rejected_messages and the log.
      msg.term();
      this.logger.warn({ seq: msg.seq, subject: msg.subject, reason }, 'mutation terminated');
    } catch (error) {
      // Not recorded yet: let it come back rather than drop it silently.
      this.logger.error({ err: error }, 'could not record a rejected message');
      msg.nak(retryDelayMs(msg.info.deliveryCount));
    }
  }
}

const SUBJECT_MISMATCH = "subject does not match the mutation's tenant, entity type and id";

/** Batches whose publication may still be under way while the next batch commits. */
const MAX_BATCHES_PUBLISHING = 8;

function isLedgerConflict(error: unknown): boolean {
  const cause = postgresErrorOf(error);
  return cause?.code === '23505' && cause.constraint === 'mutations_pkey';
}

/** Exponential backoff from 250 ms to 30 s by delivery attempt. */
export function retryDelayMs(deliveryCount: number): number {
  return Math.min(30_000, 250 * 2 ** Math.max(0, deliveryCount - 1));
}
