import { Inject, Injectable } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import type { NatsConnection } from '@nats-io/nats-core';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Subjects } from '@syncline/contracts';
import { CONFIG, NATS } from '@syncline/platform';
import type { GatewayConfig } from '../config.js';
import { toChangeMessage, type ChangeMessage } from '../fanout/change-message.js';

const SECOND_NS = 1_000_000_000;

/**
 * Reads the changes of one entity type between two stream sequences, in order, for a
 * subscription that resumes from a cursor. A short-lived consumer filtered on the type's
 * subjects does the reading; it tells up front how many messages match, so an empty range
 * costs one round trip and a replay never waits for messages that will not come.
 */
@Injectable()
export class ReplayService {
  private jsm: JetStreamManager | undefined;
  private readonly subjects: Subjects;

  constructor(
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) private readonly config: GatewayConfig,
  ) {
    this.subjects = new Subjects(config.SYNC_NAMESPACE);
  }

  /**
   * Calls `deliver` for each change of the type with `afterSeq < seq <= untilSeq`, waiting for
   * the promise it may return (pacing a slow reader); returns how many.
   */
  async replay(
    tenant: string,
    entityType: string,
    afterSeq: number,
    untilSeq: number,
    deliver: (change: ChangeMessage) => void | Promise<void>,
  ): Promise<number> {
    if (afterSeq >= untilSeq) return 0;
    const { count } = await this.read(tenant, entityType, afterSeq, { untilSeq, deliver });
    return count;
  }

  /** Up to `limit` changes of the type after `afterSeq`, in order, and whether more follow. */
  async page(
    tenant: string,
    entityType: string,
    afterSeq: number,
    limit: number,
  ): Promise<{ changes: ChangeMessage[]; hasMore: boolean }> {
    const changes: ChangeMessage[] = [];
    const { hasMore } = await this.read(tenant, entityType, afterSeq, {
      limit,
      deliver: (change) => {
        changes.push(change);
      },
    });
    return { changes, hasMore };
  }

  private async read(
    tenant: string,
    entityType: string,
    afterSeq: number,
    bounds: { untilSeq?: number; limit?: number; deliver: (change: ChangeMessage) => void | Promise<void> },
  ): Promise<{ count: number; hasMore: boolean }> {
    this.jsm ??= await jetstreamManager(this.nats);
    const stream = this.config.CHANGES_STREAM;
    const name = `replay_${randomBytes(8).toString('hex')}`;
    const info = await this.jsm.consumers.add(stream, {
      name,
      filter_subject: this.subjects.changesOfType(tenant, entityType),
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: afterSeq + 1,
      ack_policy: AckPolicy.None,
      mem_storage: true,
      inactive_threshold: 60 * SECOND_NS,
    });
    const untilSeq = bounds.untilSeq ?? Number.MAX_SAFE_INTEGER;
    const limit = bounds.limit ?? Number.MAX_SAFE_INTEGER;
    let count = 0;
    let hasMore = false;
    try {
      if (info.num_pending === 0) return { count, hasMore };
      const consumer = await jetstream(this.nats).consumers.get(stream, name);
      const messages = await consumer.consume({ max_messages: Math.min(info.num_pending, limit, 1000) });
      for await (const msg of messages) {
        if (msg.seq > untilSeq) break;
        await bounds.deliver(toChangeMessage(msg));
        count++;
        if (msg.seq === untilSeq || msg.info.pending === 0) break;
        if (count === limit) {
          hasMore = true;
          break;
        }
      }
      await messages.close();
    } finally {
      await this.jsm.consumers.delete(stream, name).catch(() => undefined);
    }
    return { count, hasMore };
  }
}
