import { Inject, Injectable } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstreamManager, type ConsumerInfo, type JetStreamManager } from '@nats-io/jetstream';
import { WORKER_CONSUMER } from '@syncline/contracts';
import { CONFIG, NATS } from '@syncline/platform';
import type { GatewayConfig } from '../config.js';

/** The sync workers' shared consumer on MUTATIONS, as JetStream reports it: their queue. */
@Injectable()
export class WorkerQueue {
  private jsm: Promise<JetStreamManager> | undefined;

  constructor(
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) private readonly config: GatewayConfig,
  ) {}

  /** The consumer's state, or undefined when it cannot be read (no worker started yet, NATS failing over). */
  async read(timeoutMs = this.config.REQUEST_TIMEOUT_MS): Promise<ConsumerInfo | undefined> {
    try {
      this.jsm ??= jetstreamManager(this.nats, { timeout: timeoutMs });
      return await (await this.jsm).consumers.info(this.config.MUTATIONS_STREAM, WORKER_CONSUMER.durableName);
    } catch {
      this.jsm = undefined;
      return undefined;
    }
  }
}
