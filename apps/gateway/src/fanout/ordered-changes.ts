import type { NatsConnection } from '@nats-io/nats-core';
import { DeliverPolicy, jetstream, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { logConsumerStatus, PULL_HEARTBEAT_MS, type Logger } from '@syncline/platform';

/** How long each pull request of a feed lasts. */
const PULL_EXPIRES_MS = 5_000;
/** Changes requested ahead; refilled at half, so a busy feed never waits on a round trip. */
const PULL_BATCH = 1_000;
/** Missed-heartbeat reports in a row after which the consumer is given up and started anew. */
const MISSED_REPORTS_BEFORE_RESTART = 2;
/** Between attempts to create the new consumer (while JetStream elects the stream's new leader). */
const RECREATE_RETRY_MS = 500;
/**
 * How long creating a consumer may take. While a NATS node is down, JetStream may place the new
 * consumer on it, and the request then gets no answer at all: a short wait and another attempt
 * (placed anew) beat the client's default of 5 s, which twice in a row kept a feed down for 10 s.
 */
const CREATE_TIMEOUT_MS = 1_500;

/**
 * An ordered, gap-free read of CHANGES from `startSeq` on, limited to `filter`: an ordered pull
 * consumer, with a heartbeat of `PULL_HEARTBEAT_MS` (a push one's is fixed at 30 s).
 *
 * nats.js recreates an ordered consumer only once the server answers that it is gone. When the
 * node that held the consumer dies, nothing answers that until the node is back, and the feed
 * stalled for as long as the node was down (20 s of outage, 27 s without changes in the fault
 * suite). So after two missed-heartbeat reports in a row (about 2 s of silence) the consumer is
 * dropped and a new one starts right after the last change delivered, which the cluster places
 * on a live node.
 */
export class OrderedChanges implements AsyncIterable<JsMsg> {
  private current: ConsumerMessages | undefined;
  private lastSeq: number;
  private closed = false;

  private constructor(
    private readonly nats: NatsConnection,
    private readonly stream: string,
    private readonly filter: string,
    startSeq: number,
    private readonly logger: Logger,
  ) {
    this.lastSeq = startSeq - 1;
  }

  static async open(
    nats: NatsConnection,
    stream: string,
    filter: string,
    startSeq: number,
    logger: Logger,
  ): Promise<OrderedChanges> {
    const changes = new OrderedChanges(nats, stream, filter, startSeq, logger);
    changes.current = await changes.consume();
    return changes;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<JsMsg> {
    while (!this.closed && this.current) {
      for await (const msg of this.current) {
        this.lastSeq = msg.seq;
        yield msg;
      }
      if (this.closed) return;
      this.logger.warn({ filter: this.filter, after: this.lastSeq }, 'change feed consumer restarted');
      this.current = await this.consumeUntilOpen();
    }
  }

  /**
   * Drops the consumer and starts a new one right after the last change delivered. After the
   * stream got a new leader, a consumer on a surviving node went on sending heartbeats but no
   * changes until the lost node came back (20 s in the fault suite), so nothing else reveals it.
   */
  restart(): void {
    if (this.closed) return;
    void this.current?.close();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.current?.close();
  }

  /** While the cluster elects new leaders, creating a consumer can fail for a while: keep trying. */
  private async consumeUntilOpen(): Promise<ConsumerMessages | undefined> {
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        const messages = await this.consume();
        if (!this.closed) return messages;
        await messages.close();
      } catch (error) {
        this.logger.warn({ err: error, filter: this.filter, attempt }, 'change feed consumer not created yet');
        await new Promise((resolve) => setTimeout(resolve, RECREATE_RETRY_MS));
      }
    }
    return undefined;
  }

  private async consume(): Promise<ConsumerMessages> {
    const consumer = await jetstream(this.nats, { timeout: CREATE_TIMEOUT_MS }).consumers.get(this.stream, {
      filter_subjects: this.filter,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: this.lastSeq + 1,
    });
    const messages = await consumer.consume({
      expires: PULL_EXPIRES_MS,
      max_messages: PULL_BATCH,
      idle_heartbeat: PULL_HEARTBEAT_MS,
    });
    logConsumerStatus(messages, this.logger, { filter: this.filter });
    void this.restartWhenSilent(messages);
    return messages;
  }

  /** Ends `messages` after repeated missed heartbeats; the iteration then starts a new consumer. */
  private async restartWhenSilent(messages: ConsumerMessages): Promise<void> {
    let missed = 0;
    let seenSeq = this.lastSeq;
    for await (const status of messages.status()) {
      if (status.type !== 'heartbeats_missed') continue;
      // Reports that changes kept coming between are not in a row.
      missed = this.lastSeq === seenSeq ? missed + 1 : 1;
      seenSeq = this.lastSeq;
      if (missed >= MISSED_REPORTS_BEFORE_RESTART) {
        await messages.close();
        return;
      }
    }
  }
}
