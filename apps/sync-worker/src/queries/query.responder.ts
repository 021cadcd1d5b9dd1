import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import type { z } from 'zod';
import {
  ErrorCode,
  QueryName,
  QueueGroup,
  Subjects,
  SynclineError,
  changesQuerySchema,
  outcomeQuerySchema,
  healthQuerySchema,
  statsQuerySchema,
  snapshotQuerySchema,
} from '@syncline/contracts';
import { CONFIG, LOGGER, NATS, decodeJson, encodeJson, replyError, type Logger } from '@syncline/platform';
import type { SyncWorkerConfig } from '../config.js';
import { QueryRepository } from './query.repository.js';

/** Answers the gateways' read queries over request/reply; every worker replica serves the queue group. */
@Injectable()
export class QueryResponder implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly subscriptions: Subscription[] = [];

  constructor(
    private readonly queries: QueryRepository,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) private readonly config: SyncWorkerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    const subjects = new Subjects(this.config.SYNC_NAMESPACE);
    this.serve(subjects.query(QueryName.changes), changesQuerySchema, (q) => this.queries.changes(q));
    this.serve(subjects.query(QueryName.snapshot), snapshotQuerySchema, (q) => this.queries.snapshot(q));
    this.serve(subjects.query(QueryName.outcome), outcomeQuerySchema, (q) => this.queries.outcome(q));
    this.serve(subjects.query(QueryName.health), healthQuerySchema, () => this.queries.health());
    this.serve(subjects.query(QueryName.stats), statsQuerySchema, (q) => this.queries.stats(q));
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all(this.subscriptions.map((s) => s.drain()));
  }

  private serve<S extends z.ZodType>(
    subject: string,
    schema: S,
    answer: (query: z.infer<S>) => Promise<unknown>,
  ): void {
    const subscription = this.nats.subscribe(subject, {
      queue: QueueGroup.syncWorker,
      callback: (error, msg) => {
        if (!error) void this.reply(msg, schema, answer);
      },
    });
    this.subscriptions.push(subscription);
  }

  private async reply<S extends z.ZodType>(
    msg: Msg,
    schema: S,
    answer: (query: z.infer<S>) => Promise<unknown>,
  ): Promise<void> {
    try {
      let body: unknown;
      try {
        body = decodeJson(msg.data);
      } catch {
        throw new SynclineError(ErrorCode.BAD_FRAME, 'query is not valid JSON');
      }
      const query = schema.safeParse(body);
      if (!query.success)
        throw new SynclineError(ErrorCode.VALIDATION_FAILED, query.error.issues[0]?.message ?? 'invalid query');
      msg.respond(encodeJson(await answer(query.data)));
    } catch (error) {
      if (!SynclineError.is(error)) this.logger.error({ err: error, subject: msg.subject }, 'query failed');
      msg.respond(encodeJson(replyError(error)));
    }
  }
}
