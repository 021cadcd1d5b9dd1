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
import { SyncPositions, WORKER_CONSUMER } from '@syncline/contracts';
import { CONFIG, LOGGER, logConsumerStatus, NATS, PULL_HEARTBEAT_MS, endSpan, type Logger } from '@syncline/platform';
import type { SyncWorkerConfig } from '../config.js';
import { EntityCache } from '../entities/entity-cache.js';
import { ChangePublisher } from '../outbox/change-publisher.service.js';
import { OutcomeNotifier } from '../outcomes/outcome-notifier.js';
import { WorkerMetrics } from '../telemetry/worker-metrics.js';
import { BatchPipeline } from './batch-pipeline.js';
import type { BatchPlan } from './batch-processor.service.js';
import { BatchProcessor } from './batch-processor.service.js';
import { EntityStoreRepository } from './entity-store.repository.js';
import { MutationDecoder, type Delivery } from './mutation-decoder.js';
import { RejectedMessageRepository } from './rejected-message.repository.js';

/**
 * The JetStream edge of the worker. Messages arrive continuously from the shared durable
 * consumer and flow through the {@link BatchPipeline}: whatever arrived while earlier batches were
 * being written forms the next batch, so a quiet system commits one mutation at a time (low
 * latency) and a busy one hundreds per statement (high throughput). Only this class acks or
 * terminates messages, and it never naks one: a batch that fails is retried here, in order.
 */
@Injectable()
export class MutationConsumer implements OnApplicationBootstrap, OnApplicationShutdown {
  private messages: ConsumerMessages | undefined;
  private receiving: Promise<void> | undefined;
  private pipeline: BatchPipeline<Delivery> | undefined;
  /** Messages taken from the consumer and not yet acknowledged or terminated. */
  private readonly held = new Set<Delivery>();
  /** Deliveries decoded in the current turn of the event loop, handed over together. */
  private arriving: Delivery[] = [];
  private roomWaiter: (() => void) | undefined;
  private keepAlive: NodeJS.Timeout | undefined;

  constructor(
    private readonly processor: BatchProcessor,
    private readonly store: EntityStoreRepository,
    private readonly decoder: MutationDecoder,
    private readonly publisher: ChangePublisher,
    private readonly outcomes: OutcomeNotifier,
    private readonly rejected: RejectedMessageRepository,
    private readonly metrics: WorkerMetrics,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) private readonly config: SyncWorkerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    metrics.observeBacklog(() => this.pipeline?.size ?? 0);
  }

  /** Batches in order over the mutations of one MUTATIONS stream (its epoch: see `isSuperseded`). */
  private createPipeline(mutationStream: string): BatchPipeline<Delivery> {
    return new BatchPipeline(
      this.processor,
      this.store,
      new EntityCache(this.config.WORKER_ENTITY_CACHE_SIZE),
      {
        committed: (items, plan, outboxId, startedAt) => this.committed(items, plan, outboxId, startedAt),
        refused: (item, error) => this.refuse(item, error),
        retrying: (size, error, attempt, reason) => {
          this.metrics.retries.inc({ reason });
          // Another worker wrote an entity meanwhile: expected with several workers, not worth a warning.
          if (reason === 'stale')
            this.logger.debug({ err: error, size, attempt }, 'batch computed on stale state; again');
          else this.logger.warn({ err: error, size, attempt, reason }, 'batch failed; retrying it in place');
        },
      },
      {
        mutationStream,
        batchSize: this.config.WORKER_BATCH_SIZE,
        maxInFlight: this.config.WORKER_BATCHES_IN_FLIGHT,
      },
    );
  }

  async onApplicationBootstrap(): Promise<void> {
    const stream = await (await jetstreamManager(this.nats)).streams.info(this.config.MUTATIONS_STREAM);
    this.pipeline = this.createPipeline(SyncPositions.epochOf(stream.created));
    await this.ensureConsumer();
    const consumer = await jetstream(this.nats).consumers.get(
      this.config.MUTATIONS_STREAM,
      WORKER_CONSUMER.durableName,
    );
    this.messages = await consumer.consume({
      max_messages: this.config.WORKER_PREFETCH,
      expires: this.config.WORKER_PULL_EXPIRES_MS,
      idle_heartbeat: PULL_HEARTBEAT_MS,
      // On missed heartbeats, pull again at once. Unbound, nats.js first asks for the consumer's
      // info, which gets no answer until the consumer has a new leader, and then waits a whole
      // `expires` before asking again: after losing the node that led the consumer, deliveries
      // resumed 12-19 s later instead of about a second after the election. A consumer deleted
      // from under the workers is created again by `recoverConsumer`.
      bind: true,
    });
    logConsumerStatus(this.messages, this.logger, { consumer: WORKER_CONSUMER.durableName });
    void this.recoverConsumerWhenSilent(this.messages);
    this.receiving = this.receive(this.messages);
    // Held messages (queued behind a batch that is being retried) must not go to another worker.
    const interval = Math.max(1000, Math.floor(this.config.WORKER_ACK_WAIT_MS / 3));
    this.keepAlive = setInterval(() => this.extendHeld(interval), interval);
    this.logger.info(
      { stream: this.config.MUTATIONS_STREAM, consumer: WORKER_CONSUMER.durableName },
      'consuming mutations',
    );
  }

  /** Stops fetching, then commits and acknowledges everything it holds. */
  async onApplicationShutdown(): Promise<void> {
    await this.stopFetching();
    await this.receiving;
    this.handOver();
    await this.pipeline?.idle();
    clearInterval(this.keepAlive);
    await this.publisher.settled();
  }

  private async receive(messages: ConsumerMessages): Promise<void> {
    for await (const msg of messages) {
      const delivery = this.decoder.decode(msg);
      if (delivery.ok) this.admit(delivery.value);
      else void this.reject(msg, delivery.reason);
      // Not iterating is what stops the consumer from pulling more: nats.js sends its next pull
      // request only when the iteration reaches it.
      while (!this.hasRoom()) await new Promise<void>((resolve) => (this.roomWaiter = resolve));
    }
  }

  private maxHeld(): number {
    return Math.max(this.config.WORKER_PREFETCH, this.config.WORKER_BATCH_SIZE * this.config.WORKER_BATCHES_IN_FLIGHT);
  }

  private admit(delivery: Delivery): void {
    this.held.add(delivery);
    this.arriving.push(delivery);
    // Let the messages of the same read join one batch.
    if (this.arriving.length === 1) setImmediate(() => this.handOver());
  }

  private handOver(): void {
    if (this.arriving.length === 0) return;
    const batch = this.arriving;
    this.arriving = [];
    this.pipeline?.push(batch);
  }

  private release(delivery: Delivery): void {
    this.held.delete(delivery);
    this.resumeIfRoom();
  }

  /** Fetching waits while the worker holds its maximum, or while publishing lags behind commits. */
  private hasRoom(): boolean {
    return this.held.size < this.maxHeld() && !this.publisher.isBehind();
  }

  private resumeIfRoom(): void {
    if (this.roomWaiter && this.hasRoom()) {
      this.roomWaiter();
      this.roomWaiter = undefined;
    }
  }

  /** From the commit on, the outbox owns the changes: the messages are acknowledged at once. */
  private committed(items: readonly Delivery[], plan: BatchPlan, outboxId: number | undefined, startedAt: number) {
    for (const delivery of items) {
      delivery.msg.ack();
      endSpan(delivery.span);
      this.release(delivery);
    }
    this.metrics.recordBatch(plan.outcomes, startedAt);
    this.outcomes.notify(plan.outcomes);
    void this.publisher.publishCommitted(plan.changes, outboxId).then(() => this.resumeIfRoom());
  }

  /** The author was told `accepted`: it now learns the mutation was refused, and rolls back. */
  private async refuse(delivery: Delivery, error: unknown): Promise<void> {
    const reason = `refused by the database: ${(error as Error).message}`;
    await this.reject(delivery.msg, reason);
    try {
      const current = await this.rejected.refuse(delivery.incoming.mutation);
      this.outcomes.notify([{ incoming: delivery.incoming, status: 'rejected', ...current, duplicate: false, reason }]);
    } catch (recordError) {
      this.logger.error({ err: recordError }, 'could not record a refused mutation');
    }
    endSpan(delivery.span, error);
    this.release(delivery);
  }

  /** A message that can never succeed is terminated and recorded for a human. */
  private async reject(msg: JsMsg, reason: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.rejected.record(this.config.MUTATIONS_STREAM, msg.seq, msg.subject, reason, msg.data);
        // Without a reason: nats-server before 2.10.4 ignores `+TERM <reason>` and would redeliver
        // the message after every ack wait. The reason is in rejected_messages and the log.
        msg.term();
        this.logger.warn({ seq: msg.seq, subject: msg.subject, reason }, 'mutation terminated');
        return;
      } catch (error) {
        // Not recorded yet: keep it rather than drop it silently.
        this.logger.error({ err: error, attempt }, 'could not record a rejected message; retrying');
        msg.working();
        await new Promise((resolve) => setTimeout(resolve, Math.min(30_000, 250 * 2 ** attempt)));
      }
    }
  }

  private extendHeld(olderThanMs: number): void {
    const now = performance.now();
    for (const delivery of this.held) if (now - delivery.takenAt > olderThanMs) delivery.msg.working();
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
    this.roomWaiter?.();
    if (drained) await messages.closed();
    else await messages.close();
  }

  /**
   * Pulls go unanswered (heartbeats missed) while a NATS node is lost, and also if the consumer
   * was deleted: then it is created again, as at boot. One check at a time; one that fails
   * (no leader yet) waits for the next report.
   */
  private async recoverConsumerWhenSilent(messages: ConsumerMessages): Promise<void> {
    let checking = false;
    for await (const status of messages.status()) {
      if (status.type !== 'heartbeats_missed' || checking) continue;
      checking = true;
      void this.ensureConsumer()
        .catch((error: unknown) => this.logger.debug({ err: error }, 'consumer not checked yet'))
        .finally(() => (checking = false));
    }
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
}
