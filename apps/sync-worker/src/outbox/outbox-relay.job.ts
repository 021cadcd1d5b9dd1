import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { CONFIG, LOGGER, type Logger } from '@syncline/platform';
import type { SyncWorkerConfig } from '../config.js';
import { ChangePublisher } from './change-publisher.service.js';
import { OutboxRepository } from './outbox.repository.js';

/** Outbox entries the relay takes per tick. */
const RELAY_BATCHES = 100;

/**
 * The safety net of the transactional outbox: batches committed but not entirely published (the
 * worker died between commit and publish, or JetStream was unreachable) are published from here,
 * once they are older than a grace period that leaves their own worker time to do it.
 */
@Injectable()
export class OutboxRelayJob implements OnApplicationBootstrap, OnApplicationShutdown {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly outbox: OutboxRepository,
    private readonly publisher: ChangePublisher,
    @Inject(CONFIG) private readonly config: SyncWorkerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => {
      this.running ??= this.relayOnce().finally(() => {
        this.running = undefined;
      });
    }, this.config.OUTBOX_RELAY_INTERVAL_MS);
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** Publishes what is pending. */
  async relayOnce(graceMs = this.config.OUTBOX_RELAY_GRACE_MS): Promise<void> {
    try {
      const batches = await this.outbox.orphaned(graceMs, RELAY_BATCHES);
      let relayed = 0;
      for (const batch of batches) {
        // What this worker is publishing right now is late, not lost: the relay leaves it alone.
        if (batch.entities.some((key) => this.publisher.isPublishing(key))) continue;
        const results = await Promise.all(
          batch.entities.map((key) => this.publisher.relayEntity(key, key.fromVersion)),
        );
        if (results.every(Boolean)) {
          this.publisher.finish(batch.outboxId);
          relayed++;
        }
      }
      if (relayed > 0) this.logger.info({ batches: relayed }, 'outbox relay published changes');
    } catch (error) {
      this.logger.warn({ err: error }, 'outbox relay failed; retrying on the next tick');
    }
  }
}
