import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { JetStreamApiCodes, JetStreamApiError, JetStreamError, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { StreamPublisher } from './stream-publisher.js';

const NATS_URL = process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';

describe('StreamPublisher on JetStream', () => {
  const stream = `PUB_${randomUUID().slice(0, 8)}`;
  const prefix = stream.toLowerCase();
  let nats: NatsConnection;
  let publisher: StreamPublisher;

  beforeAll(async () => {
    nats = await connect({ servers: NATS_URL.split(','), noAsyncTraces: true });
    await (await jetstreamManager(nats)).streams.add({ name: stream, subjects: [`${prefix}.>`] });
    publisher = new StreamPublisher(nats, 2000);
  });

  afterAll(async () => {
    publisher?.close();
    await (await jetstreamManager(nats)).streams.delete(stream).catch(() => undefined);
    await nats?.close();
  });

  const data = (text: string) => new TextEncoder().encode(text);

  it('resolves with the sequence each message was stored at, many at once', async () => {
    const acks = await Promise.all(
      Array.from({ length: 200 }, (_, i) => publisher.publish(`${prefix}.many.${i % 7}`, data(`m${i}`))),
    );
    const seqs = acks.map((ack) => ack.seq);
    expect(new Set(seqs).size).toBe(200);
    expect(acks.every((ack) => ack.stream === stream && !ack.duplicate)).toBe(true);
    const stored = await (await jetstreamManager(nats)).streams.getMessage(stream, { seq: seqs[42]! });
    expect(new TextDecoder().decode(stored?.data)).toBe('m42');
  });

  it('I2: a repeated message id is answered as a duplicate with the original sequence', async () => {
    const first = await publisher.publish(`${prefix}.dedupe`, data('once'), { msgID: 'id-1' });
    const again = await publisher.publish(`${prefix}.dedupe`, data('once'), { msgID: 'id-1' });
    expect(again).toEqual({ stream, seq: first.seq, duplicate: true });
  });

  it('I3: a message expecting another last sequence on its subject is refused with the API error', async () => {
    const first = await publisher.publish(`${prefix}.ordered`, data('v1'), { expectLastSubjectSequence: 0 });
    await publisher.publish(`${prefix}.ordered`, data('v2'), { expectLastSubjectSequence: first.seq });
    const refused = await publisher
      .publish(`${prefix}.ordered`, data('v2 again'), { expectLastSubjectSequence: first.seq })
      .catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(JetStreamApiError);
    expect((refused as JetStreamApiError).code).toBe(JetStreamApiCodes.StreamWrongLastSequence);
  });

  it('fails at once when no stream captures the subject', async () => {
    const refused = await publisher.publish(`nowhere-${randomUUID()}.x`, data('lost')).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(JetStreamError);
    expect(String(refused)).toMatch(/no stream answered/);
  });

  it('fails what is still unanswered when it is closed, rather than leaving it hanging', async () => {
    const other = new StreamPublisher(nats, 60_000);
    // Closed in the same turn: the stream's answer cannot have come yet.
    const pending = other.publish(`${prefix}.closing`, data('x')).catch((error: unknown) => error);
    other.close();
    expect(await pending).toBeInstanceOf(JetStreamError);
  });
});
