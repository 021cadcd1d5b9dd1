import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { NatsConnection, Subscription as NatsSubscription } from '@nats-io/nats-core';
import { Subjects } from '@syncline/contracts';
import {
  CONFIG,
  LOGGER,
  NATS,
  TELEMETRY,
  SpanKind,
  endSpan,
  extractTraceContext,
  onReconnect,
  type Logger,
  type Telemetry,
} from '@syncline/platform';
import type { GatewayConfig } from '../config.js';
import { DeliveryMetrics } from '../telemetry/delivery-metrics.js';
import { deltaFrame, toChangeMessage, type ChangeMessage } from './change-message.js';
import { OrderedChanges } from './ordered-changes.js';
import { StreamPositionService } from './stream-position.service.js';
import type { Subscription } from './subscription.js';

/** The live changes of one entity type of one tenant, shared by every subscription to it on this gateway. */
class TypeFeed {
  readonly subscriptions = new Set<Subscription>();
  /** Every change after this sequence reaches the subscriptions. */
  lastSeq = 0;
  messages: OrderedChanges | undefined;
  ready: Promise<void> | undefined;
  idleTimer: NodeJS.Timeout | undefined;

  constructor(readonly key: string) {}
}

/** How long a feed nobody listens to is kept, so a reconnecting client finds it warm. */
const IDLE_FEED_MS = 30_000;

/**
 * Brings CHANGES to this gateway's subscriptions: one ordered consumer per (tenant, entity
 * type) that has subscribers here, filtered on its subjects, so a gateway receives only what
 * its clients asked for, never the firehose.
 */
@Injectable()
export class ChangeFeedService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly feeds = new Map<string, TypeFeed>();
  private readonly subjects: Subjects;
  private leaderElections: NatsSubscription | undefined;

  constructor(
    private readonly positions: StreamPositionService,
    private readonly metrics: DeliveryMetrics,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) private readonly config: GatewayConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(TELEMETRY) private readonly telemetry: Telemetry,
  ) {
    this.subjects = new Subjects(config.SYNC_NAMESPACE);
  }

  /**
   * Adds a subscription to its feed, starting the feed if needed, and returns the sequence
   * after which the subscription receives every change live. A resuming subscription replays
   * what lies between its cursor and that sequence.
   */
  async attach(subscription: Subscription): Promise<number> {
    const feed = this.feedFor(subscription.connection.tenant, subscription.entityType);
    clearTimeout(feed.idleTimer);
    feed.subscriptions.add(subscription);
    try {
      await feed.ready;
    } catch (error) {
      feed.subscriptions.delete(subscription);
      throw error;
    }
    return feed.lastSeq;
  }

  detach(subscription: Subscription): void {
    const key = feedKey(subscription.connection.tenant, subscription.entityType);
    const feed = this.feeds.get(key);
    if (!feed) return;
    feed.subscriptions.delete(subscription);
    if (feed.subscriptions.size === 0) {
      clearTimeout(feed.idleTimer);
      feed.idleTimer = setTimeout(() => this.stopFeed(feed), IDLE_FEED_MS);
      feed.idleTimer.unref();
    }
  }

  /**
   * A feed's consumer may be lost with a NATS node without saying so, and nats.js then waits for
   * the node to come back: every feed starts a new consumer when CHANGES gets a new leader, and
   * when this gateway reconnected to another server (the consumer may have lived on the one it
   * lost, and nats.js checks on it with requests nothing answers until that server returns).
   */
  onApplicationBootstrap(): void {
    this.leaderElections = this.nats.subscribe(this.subjects.streamLeaderElected(this.config.CHANGES_STREAM), {
      callback: () => this.restartFeeds('change stream has a new leader'),
    });
    onReconnect(this.nats, () => this.restartFeeds('reconnected to NATS'));
  }

  private restartFeeds(why: string): void {
    this.logger.warn({ stream: this.config.CHANGES_STREAM, feeds: this.feeds.size }, `${why}: restarting change feeds`);
    for (const feed of this.feeds.values()) feed.messages?.restart();
  }

  async onApplicationShutdown(): Promise<void> {
    this.leaderElections?.unsubscribe();
    await Promise.all([...this.feeds.values()].map((feed) => this.stopFeed(feed)));
  }

  private feedFor(tenant: string, entityType: string): TypeFeed {
    const key = feedKey(tenant, entityType);
    let feed = this.feeds.get(key);
    if (!feed) {
      feed = new TypeFeed(key);
      this.feeds.set(key, feed);
      const started = feed;
      feed.ready = this.startFeed(started, tenant, entityType).catch((error: unknown) => {
        this.feeds.delete(key);
        throw error;
      });
    }
    return feed;
  }

  private async startFeed(feed: TypeFeed, tenant: string, entityType: string): Promise<void> {
    // The feed starts right after the stream's current end, so its starting point is known exactly.
    const { lastSeq } = await this.positions.state();
    feed.lastSeq = lastSeq;
    feed.messages = await OrderedChanges.open(
      this.nats,
      this.config.CHANGES_STREAM,
      this.subjects.changesOfType(tenant, entityType),
      lastSeq + 1,
      this.logger,
    );
    void this.pump(feed, feed.messages);
  }

  private async pump(feed: TypeFeed, messages: OrderedChanges): Promise<void> {
    try {
      for await (const msg of messages) this.dispatch(feed, toChangeMessage(msg));
    } catch (error) {
      this.logger.error({ err: error, feed: feed.key }, 'change feed failed');
    }
  }

  private dispatch(feed: TypeFeed, change: ChangeMessage): void {
    feed.lastSeq = change.seq;
    if (feed.subscriptions.size === 0) return;
    const span = this.telemetry.tracer.startSpan(
      'changes.deliver',
      { kind: SpanKind.CONSUMER, attributes: { 'messaging.sequence': change.seq } },
      extractTraceContext(change.msg.headers),
    );
    const epoch = this.positions.epoch;
    let frame: Buffer | undefined;
    const build = () => (frame ??= Buffer.from(deltaFrame(change, epoch)));
    let delivered = 0;
    for (const subscription of feed.subscriptions) {
      if (subscription.offer(change, build)) delivered++;
    }
    if (delivered > 0 && change.receivedAt !== undefined) this.metrics.recordDelivery(change.receivedAt, delivered);
    span.setAttribute('sync.recipients', delivered);
    endSpan(span);
  }

  private async stopFeed(feed: TypeFeed): Promise<void> {
    if (this.feeds.get(feed.key) !== feed || feed.subscriptions.size > 0) return;
    this.feeds.delete(feed.key);
    clearTimeout(feed.idleTimer);
    await feed.messages?.close();
  }
}

function feedKey(tenant: string, entityType: string): string {
  return `${tenant}\u0000${entityType}`;
}
