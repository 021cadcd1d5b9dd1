import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import { Subjects, outcomeBatchSchema, type OutcomeMessage } from '@syncline/contracts';
import { CONFIG, LOGGER, NATS, decodeJson, type Logger } from '@syncline/platform';
import type { GatewayConfig } from '../config.js';
import { ConnectionRegistry } from '../connections/connection.registry.js';
import { PrometheusMetrics } from '../telemetry/prometheus-metrics.js';

/**
 * How late an outcome may be before the gateway asks the workers' ledger for it. Outcomes come
 * over core NATS, and one published while this gateway was cut off from NATS is lost: the
 * ledger has it, and `OverdueOutcomes` fetches it from there.
 */
export const OVERDUE_AFTER_MS = 5_000;

/**
 * Turns the workers' outcome messages into the author's final `ack` (applied, merged or
 * rejected, with the version and, when the client must rebase or roll back, the server's document).
 * A worker sends the outcomes of one batch for this gateway in one message.
 */
@Injectable()
export class OutcomeAcks implements OnApplicationBootstrap, OnApplicationShutdown {
  private subscription: Subscription | undefined;

  constructor(
    private readonly connections: ConnectionRegistry,
    private readonly prometheus: PrometheusMetrics,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) private readonly config: GatewayConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** Remembers the frame id of a `mutate`, for the ack that will answer it. */
  expect(connectionId: string, mutationId: string, frameId: string | undefined): void {
    this.connections
      .get(connectionId)
      ?.awaitingOutcome.set(mutationId, { frameId, checkAt: Date.now() + OVERDUE_AFTER_MS, checks: 0 });
  }

  forget(connectionId: string, mutationId: string): void {
    this.connections.get(connectionId)?.awaitingOutcome.delete(mutationId);
  }

  onApplicationBootstrap(): void {
    const subject = new Subjects(this.config.SYNC_NAMESPACE).outcome(this.config.INSTANCE_ID ?? 'gateway');
    this.subscription = this.nats.subscribe(subject, {
      callback: (error, msg) => {
        if (error) return;
        let parsed;
        try {
          parsed = outcomeBatchSchema.safeParse(decodeJson(msg.data));
        } catch {
          parsed = undefined;
        }
        if (!parsed?.success) {
          this.logger.warn({ subject: msg.subject }, 'malformed outcome message ignored');
          return;
        }
        for (const outcome of parsed.data.outcomes) this.answer(outcome);
      },
    });
  }

  private answer({ connectionId, ...outcome }: OutcomeMessage): void {
    if (outcome.strategy) this.prometheus.conflicts.inc({ strategy: outcome.strategy, status: outcome.status });
    const connection = this.connections.get(connectionId);
    if (!connection) return;
    // Only the answer to a mutation this connection sent: headers on a message published
    // straight onto NATS must not let anyone else write into a client's connection.
    if (!connection.awaitingOutcome.has(outcome.mutationId)) return;
    const frameId = connection.awaitingOutcome.get(outcome.mutationId)?.frameId;
    connection.awaitingOutcome.delete(outcome.mutationId);
    connection.send('ack', outcome, frameId);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.subscription?.drain();
  }
}
