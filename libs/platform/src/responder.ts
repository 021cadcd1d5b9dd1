import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import { ErrorCode, SynclineError } from '@syncline/contracts';
import type { z } from 'zod';
import type { Logger } from './logger.js';
import { decodeJson, encodeJson, replyError } from './nats.js';

/**
 * The answering side of `requestJson`: serves JSON requests in a queue group, checks each against
 * its schema, and answers with the result or with `{error:{code,message}}`. A request that cannot
 * be read gets a stable code, never silence, so the asker does not wait for its timeout.
 */
export class JsonResponder {
  private readonly subscriptions: Subscription[] = [];
  /** Requests received and not yet answered. */
  private readonly answering = new Set<Promise<void>>();

  constructor(
    private readonly nats: NatsConnection,
    private readonly queue: string,
    private readonly logger: Logger,
  ) {}

  serve<S extends z.ZodType>(
    subject: string,
    schema: S,
    answer: (request: z.output<S>, msg: Msg) => Promise<unknown>,
  ): void {
    const subscription = this.nats.subscribe(subject, {
      queue: this.queue,
      callback: (error, msg) => {
        if (error) {
          this.logger.error({ err: error, subject }, 'subscription failed');
          return;
        }
        const answered = this.respond(msg, schema, answer);
        this.answering.add(answered);
        void answered.finally(() => this.answering.delete(answered));
      },
    });
    this.subscriptions.push(subscription);
  }

  /**
   * Stops taking requests and answers those already taken. `drain()` resolves once the last
   * request was handed to its callback, not once it was answered; an answer may still wait for
   * PostgreSQL. Closing NATS before it is sent would leave the asker waiting for its timeout and
   * then retrying: a worker would hold its batch, and its entities' row locks, until then.
   */
  async stop(): Promise<void> {
    await Promise.all(this.subscriptions.map((subscription) => subscription.drain()));
    await Promise.allSettled(this.answering);
  }

  private async respond<S extends z.ZodType>(
    msg: Msg,
    schema: S,
    answer: (request: z.output<S>, msg: Msg) => Promise<unknown>,
  ): Promise<void> {
    try {
      const request = schema.safeParse(decodeRequest(msg.data));
      if (!request.success) {
        throw new SynclineError(
          ErrorCode.VALIDATION_FAILED,
          `invalid request: ${request.error.issues[0]?.message ?? 'does not match its schema'}`,
        );
      }
      msg.respond(encodeJson(await answer(request.data, msg)));
    } catch (error) {
      if (!SynclineError.is(error)) this.logger.error({ err: error, subject: msg.subject }, 'request failed');
      msg.respond(encodeJson(replyError(error)));
    }
  }
}

function decodeRequest(data: Uint8Array): unknown {
  try {
    return decodeJson(data);
  } catch {
    throw new SynclineError(ErrorCode.BAD_FRAME, 'request is not valid JSON');
  }
}
