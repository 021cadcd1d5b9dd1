import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  QueryName,
  QueueGroup,
  Subjects,
  changesQuerySchema,
  outcomeQuerySchema,
  outcomesQuerySchema,
  healthQuerySchema,
  statsQuerySchema,
  snapshotQuerySchema,
} from '@syncline/contracts';
import { CONFIG, JsonResponder, LOGGER, NATS, type Logger } from '@syncline/platform';
import type { SyncWorkerConfig } from '../config.js';
import { QueryRepository } from './query.repository.js';

/** Answers the gateways' read queries over request/reply; every worker replica serves the queue group. */
@Injectable()
export class QueryResponder implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly responder: JsonResponder;

  constructor(
    private readonly queries: QueryRepository,
    @Inject(NATS) nats: NatsConnection,
    @Inject(CONFIG) private readonly config: SyncWorkerConfig,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.responder = new JsonResponder(nats, QueueGroup.syncWorker, logger);
  }

  onApplicationBootstrap(): void {
    const subjects = new Subjects(this.config.SYNC_NAMESPACE);
    this.responder.serve(subjects.query(QueryName.changes), changesQuerySchema, (q) => this.queries.changes(q));
    this.responder.serve(subjects.query(QueryName.snapshot), snapshotQuerySchema, (q) => this.queries.snapshot(q));
    this.responder.serve(subjects.query(QueryName.outcome), outcomeQuerySchema, (q) => this.queries.outcome(q));
    this.responder.serve(subjects.query(QueryName.outcomes), outcomesQuerySchema, (q) => this.queries.outcomes(q));
    this.responder.serve(subjects.query(QueryName.health), healthQuerySchema, () => this.queries.health());
    this.responder.serve(subjects.query(QueryName.stats), statsQuerySchema, (q) => this.queries.stats(q));
  }

  async onApplicationShutdown(): Promise<void> {
    await this.responder.stop();
  }
}
