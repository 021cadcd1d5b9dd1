import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { z } from 'zod';
import { ErrorCode, SynclineError } from '@syncline/contracts';
import { createLogger } from './logger.js';
import { requestJson } from './nats.js';
import { JsonResponder } from './responder.js';

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const greetingSchema = z.strictObject({ name: z.string() });
const answerSchema = z.strictObject({ greeting: z.string() });

describe('JsonResponder', () => {
  const subject = `responder-${randomUUID().slice(0, 8)}`;
  const logger = createLogger('responder-test', 'silent', 'test');
  let server: NatsConnection;
  let asker: NatsConnection;

  beforeAll(async () => {
    server = await connect({ servers: NATS_URL.split(',') });
    asker = await connect({ servers: NATS_URL.split(',') });
  });

  afterAll(async () => {
    await server.close();
    await asker.close();
  });

  function ask(body: unknown, on = subject) {
    return requestJson(asker, on, body, answerSchema, { timeoutMs: 2000 });
  }

  it('answers a valid request, and refuses unreadable ones with stable codes instead of silence', async () => {
    const responder = new JsonResponder(server, 'greeters', logger);
    responder.serve(subject, greetingSchema, async ({ name }) => {
      if (name === 'boom') throw new Error('a bug, not for the asker to read');
      if (name === 'nobody') throw new SynclineError(ErrorCode.NOT_FOUND, 'no such person');
      return { greeting: `hello ${name}` };
    });
    await server.flush();
    try {
      await expect(ask({ name: 'ada' })).resolves.toEqual({ greeting: 'hello ada' });
      await expect(ask({ name: 42 })).rejects.toMatchObject({ code: ErrorCode.VALIDATION_FAILED });
      await expect(ask({ name: 'nobody' })).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND });
      await expect(ask({ name: 'boom' })).rejects.toMatchObject({
        code: ErrorCode.INTERNAL,
        message: 'internal error',
      });
      const notJson = await asker.request(subject, new TextEncoder().encode('{"name": '), { timeout: 2000 });
      expect(notJson.json()).toEqual({ error: { code: ErrorCode.BAD_FRAME, message: 'request is not valid JSON' } });
    } finally {
      await responder.stop();
    }
  });

  it('has answered the requests it took by the time stop() resolves', async () => {
    const slowSubject = `${subject}.slow`;
    const responder = new JsonResponder(server, 'greeters', logger);
    let taken!: () => void;
    const requestTaken = new Promise<void>((resolve) => (taken = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    responder.serve(slowSubject, greetingSchema, async ({ name }) => {
      taken();
      await released;
      return { greeting: `hello ${name}` };
    });
    await server.flush();

    const answer = ask({ name: 'grace' }, slowSubject).catch((error: unknown) => error);
    await requestTaken;
    let stopped = false;
    const stopping = responder.stop().then(() => (stopped = true));
    // One round trip after the drain's own, and a turn of the event loop for what follows it: the
    // subscription is drained, the answer still owed.
    await server.flush();
    await new Promise((resolve) => setImmediate(resolve));
    expect(stopped).toBe(false);
    release();
    await stopping;
    // The service closes its NATS connection right after stop(): the answer is out by then.
    expect(await answer).toEqual({ greeting: 'hello grace' });
    await expect(ask({ name: 'late' }, slowSubject)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
  });
});
