import { Inject, Injectable } from '@nestjs/common';
import {
  ErrorCode,
  SyncPositions,
  SynclineError,
  type SubscribePayload,
  type SubscriptionState,
  type UnsubscribePayload,
} from '@syncline/contracts';
import { CONFIG } from '@syncline/platform';
import type { GatewayConfig } from '../config.js';
import type { Connection } from '../connections/connection.js';
import { ReplayService } from '../resume/replay.service.js';
import { deltaFrame } from './change-message.js';
import { ChangeFeedService } from './change-feed.service.js';
import { StreamPositionService } from './stream-position.service.js';
import { Subscription } from './subscription.js';

/**
 * `subscribe` and `unsubscribe`. A subscription with a cursor first replays what it missed,
 * then goes live with nothing lost or repeated at the seam (see {@link Subscription}).
 */
@Injectable()
export class SubscriptionService {
  /** Subscriptions by connection id, then entity type. */
  private readonly byConnection = new Map<string, Map<string, Subscription>>();

  constructor(
    private readonly feeds: ChangeFeedService,
    private readonly replays: ReplayService,
    private readonly positions: StreamPositionService,
    @Inject(CONFIG) private readonly config: GatewayConfig,
  ) {}

  async subscribe(connection: Connection, payload: SubscribePayload, id: string | undefined): Promise<void> {
    const current = this.byConnection.get(connection.id) ?? new Map<string, Subscription>();
    const added = payload.entityTypes.filter((type) => !current.has(type)).length;
    if (current.size + added > this.config.MAX_SUBSCRIPTIONS_PER_CONNECTION) {
      throw new SynclineError(
        ErrorCode.LIMIT_EXCEEDED,
        `at most ${this.config.MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions per connection`,
      );
    }
    this.byConnection.set(connection.id, current);
    const types = [...new Set(payload.entityTypes)];
    const results = await Promise.allSettled(
      types.map((type) => this.subscribeOne(connection, current, type, payload.cursors?.[type], id)),
    );
    // Each type stands on its own: the ones that failed get an error, the others are subscribed.
    const subscriptions: SubscriptionState[] = [];
    results.forEach((result, index) => {
      if (result.status === 'fulfilled') {
        if (result.value) subscriptions.push(result.value);
        return;
      }
      const error = SynclineError.is(result.reason)
        ? result.reason
        : new SynclineError(ErrorCode.UNAVAILABLE, 'subscription could not start; retry', { retryAfterMs: 1000 });
      connection.sendError(
        { code: error.code, message: `${types[index]}: ${error.message}`, ...(id ? { ref: id } : {}) },
        id,
      );
    });
    if (connection.isOpen && (subscriptions.length > 0 || results.every((r) => r.status === 'fulfilled'))) {
      connection.send('subscribed', { subscriptions }, id);
    }
  }

  unsubscribe(connection: Connection, payload: UnsubscribePayload, id: string | undefined): void {
    this.drop(connection, payload.entityTypes);
    connection.send('unsubscribed', { entityTypes: payload.entityTypes }, id);
  }

  /** Stops delivering these entity types to the connection (unsubscribe, or rights withdrawn). */
  drop(connection: Connection, entityTypes: readonly string[]): void {
    const current = this.byConnection.get(connection.id);
    for (const type of entityTypes) {
      const subscription = current?.get(type);
      if (!subscription) continue;
      current?.delete(type);
      connection.subscriptions.delete(type);
      this.feeds.detach(subscription);
    }
  }

  /** Releases everything a closed connection held. */
  release(connection: Connection): void {
    const current = this.byConnection.get(connection.id);
    this.byConnection.delete(connection.id);
    for (const subscription of current?.values() ?? []) this.feeds.detach(subscription);
  }

  private async subscribeOne(
    connection: Connection,
    current: Map<string, Subscription>,
    entityType: string,
    cursor: string | undefined,
    id: string | undefined,
  ): Promise<SubscriptionState | undefined> {
    const previous = current.get(entityType);
    if (previous) this.feeds.detach(previous);

    const resumeFrom = cursor === undefined ? undefined : SyncPositions.parse(cursor);
    if (cursor !== undefined && !resumeFrom)
      throw new SynclineError(ErrorCode.INVALID_CURSOR, `invalid cursor "${cursor}"`);

    const subscription = new Subscription(connection, entityType, resumeFrom?.seq ?? 0, resumeFrom !== undefined);
    const liveAfter = await this.feeds.attach(subscription);
    current.set(entityType, subscription);
    connection.subscriptions.add(entityType);
    if (!resumeFrom) {
      subscription.lastSeq = liveAfter;
      return { entityType, cursor: SyncPositions.format({ epoch: this.positions.epoch, seq: liveAfter }), replayed: 0 };
    }

    const { epoch, firstSeq, lastSeq } = await this.positions.state();
    if (resumeFrom.epoch === epoch && resumeFrom.seq > lastSeq) {
      this.feeds.detach(subscription);
      current.delete(entityType);
      connection.subscriptions.delete(entityType);
      throw new SynclineError(ErrorCode.INVALID_CURSOR, `cursor "${cursor}" is ahead of the change feed`);
    }
    if (resumeFrom.epoch !== epoch || resumeFrom.seq + 1 < firstSeq) {
      // The stream no longer holds everything after this cursor: the client resyncs from a snapshot.
      this.feeds.detach(subscription);
      current.delete(entityType);
      connection.subscriptions.delete(entityType);
      connection.send(
        'sync_required',
        {
          entityType,
          reason: resumeFrom.epoch !== epoch ? 'epoch_changed' : 'cursor_expired',
          cursor: cursor as string,
        },
        id,
      );
      return undefined;
    }

    const frameOf = (change: Parameters<typeof deltaFrame>[0]) => deltaFrame(change, epoch);
    let replayed = 0;
    try {
      await this.replays.replay(connection.tenant, entityType, resumeFrom.seq, liveAfter, (change) => {
        if (subscription.deliver(change, () => frameOf(change))) replayed++;
        return connection.writable();
      });
    } catch (error) {
      // Going live now would leave a gap: drop the subscription, the client retries the subscribe.
      this.feeds.detach(subscription);
      current.delete(entityType);
      connection.subscriptions.delete(entityType);
      throw error;
    }
    // The replay covered every change of the type up to `liveAfter`, delivered or not (own echoes).
    subscription.lastSeq = Math.max(subscription.lastSeq, liveAfter);
    subscription.goLive(frameOf);
    return { entityType, cursor: SyncPositions.format({ epoch, seq: subscription.lastSeq }), replayed };
  }
}
