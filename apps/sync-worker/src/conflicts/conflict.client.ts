import { Inject, Injectable } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/nats-core';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { Subjects, conflictResponseSchema, type ConflictRequest, type ConflictResponse } from '@syncline/contracts';
import { CONFIG, NATS, injectTraceContext, requestJson, type Context } from '@syncline/platform';
import type { SyncWorkerConfig } from '../config.js';

/** Asks the conflict service (any replica of its queue group) to resolve one conflict. */
@Injectable()
export class ConflictClient {
  private readonly subject: string;

  constructor(
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) private readonly config: SyncWorkerConfig,
  ) {
    this.subject = new Subjects(config.SYNC_NAMESPACE).conflictResolve();
  }

  resolve(request: ConflictRequest, trace: Context): Promise<ConflictResponse> {
    return requestJson(this.nats, this.subject, request, conflictResponseSchema, {
      timeoutMs: this.config.REQUEST_TIMEOUT_MS,
      headers: injectTraceContext(natsHeaders(), trace),
    });
  }
}
