import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { sequenceStoredAfter } from './stored-change.js';

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const DUPLICATE_WINDOW_MS = 200;

describe('sequenceStoredAfter', () => {
  const stream = `STORED_${randomUUID().slice(0, 8)}`;
  const subject = `${stream.toLowerCase()}.orders.o1`;
  let nats: NatsConnection;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    nats = await connect({ servers: NATS_URL.split(',') });
    jsm = await jetstreamManager(nats);
    await jsm.streams.add({
      name: stream,
      subjects: [`${stream.toLowerCase()}.>`],
      duplicate_window: DUPLICATE_WINDOW_MS * 1_000_000,
    });
  });

  afterAll(async () => {
    await jsm.streams.delete(stream);
    await nats.close();
  });

  it('finds a change stored again after its duplicate id was forgotten, and only that change', async () => {
    const js = jetstream(nats);
    const v1 = await js.publish(subject, 'v1', { msgID: 'o1:1' });
    await js.publish(`${stream.toLowerCase()}.orders.other`, 'unrelated');
    const v2 = await js.publish(subject, 'v2', { msgID: 'o1:2', expect: { lastSubjectSequence: v1.seq } });
    await new Promise((resolve) => setTimeout(resolve, DUPLICATE_WINDOW_MS * 3));

    // Publishing v2 again, as after a lost ack, is refused as out of order, not as a duplicate.
    const refusal = await js
      .publish(subject, 'v2', { msgID: 'o1:2', expect: { lastSubjectSequence: v1.seq } })
      .catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(JetStreamApiError);

    const query = { subject, predecessorSeq: v1.seq };
    await expect(sequenceStoredAfter(jsm, stream, { ...query, msgID: 'o1:2' })).resolves.toBe(v2.seq);
    await expect(sequenceStoredAfter(jsm, stream, { ...query, msgID: 'o1:3' })).resolves.toBeUndefined();
    await expect(
      sequenceStoredAfter(jsm, stream, { subject, predecessorSeq: v2.seq, msgID: 'o1:3' }),
    ).resolves.toBeUndefined();
  });
});
