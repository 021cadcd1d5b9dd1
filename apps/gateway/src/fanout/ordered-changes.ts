import type { NatsConnection } from '@nats-io/nats-core';
import { DeliverPolicy, jetstream, type ConsumerMessages } from '@nats-io/jetstream';

/**
 * How long each pull request of a feed lasts. Heartbeats come at half of it, and two missed
 * ones make the consumer start over from its last delivered sequence: when the node that
 * served it dies, a feed resumes within about this long instead of stalling.
 */
const PULL_EXPIRES_MS = 5_000;
/** Changes requested ahead; refilled at half, so a busy feed never waits on a round trip. */
const PULL_BATCH = 1_000;

/**
 * An ordered, gap-free read of CHANGES from `startSeq` on, limited to `filter`. An ordered
 * pull consumer rather than a push one: its heartbeat follows `PULL_EXPIRES_MS`, where the
 * push variant's is fixed at 30 s.
 */
export async function orderedChanges(
  nats: NatsConnection,
  stream: string,
  filter: string,
  startSeq: number,
): Promise<ConsumerMessages> {
  const consumer = await jetstream(nats).consumers.get(stream, {
    filter_subjects: filter,
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: startSeq,
  });
  return consumer.consume({ expires: PULL_EXPIRES_MS, max_messages: PULL_BATCH });
}
