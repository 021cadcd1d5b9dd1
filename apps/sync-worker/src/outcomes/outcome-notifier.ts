import { Inject, Injectable } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/nats-core';
import { NAME_PATTERN, Subjects, type OutcomeBatch, type OutcomeMessage } from '@syncline/contracts';
import { CONFIG, LOGGER, NATS, encodeJson, type Logger } from '@syncline/platform';
import type { SyncWorkerConfig } from '../config.js';
import type { MutationOutcome } from '../mutations/incoming-mutation.js';

/**
 * Tells the gateways that took a batch's mutations what became of them, so they can ack their
 * authors: one message per gateway per batch. Core NATS, fire and forget: a lost outcome costs
 * the client a resend, which the ledger answers with the recorded outcome.
 */
@Injectable()
export class OutcomeNotifier {
  private readonly subjects: Subjects;

  constructor(
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) config: SyncWorkerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.subjects = new Subjects(config.SYNC_NAMESPACE);
  }

  notify(outcomes: readonly MutationOutcome[]): void {
    const byGateway = new Map<string, OutcomeMessage[]>();
    for (const outcome of outcomes) {
      const { gatewayId, connectionId } = outcome.incoming;
      if (!gatewayId || !connectionId) continue;
      // Headers are outside input too (a backend service may set anything): a gateway id that is
      // no subject token has no gateway to answer, and must not stop the worker.
      if (!NAME_PATTERN.test(gatewayId)) {
        this.logger.debug({ gatewayId: gatewayId.slice(0, 80) }, 'outcome for an invalid gateway id dropped');
        continue;
      }
      const messages = byGateway.get(gatewayId) ?? [];
      messages.push(outcomeMessageOf(outcome, connectionId));
      byGateway.set(gatewayId, messages);
    }
    for (const [gatewayId, messages] of byGateway) {
      const batch: OutcomeBatch = { outcomes: messages };
      this.nats.publish(this.subjects.outcome(gatewayId), encodeJson(batch));
    }
  }
}

function outcomeMessageOf(outcome: MutationOutcome, connectionId: string): OutcomeMessage {
  const { mutation } = outcome.incoming;
  return {
    connectionId,
    mutationId: mutation.mutationId,
    entityType: mutation.entityType,
    entityId: mutation.entityId,
    status: outcome.status,
    version: outcome.version,
    ...(outcome.data === undefined ? {} : { data: outcome.data }),
    ...(outcome.vectorClock === undefined ? {} : { vectorClock: outcome.vectorClock }),
    ...(outcome.duplicate ? { duplicate: true } : {}),
    ...(outcome.reason === undefined ? {} : { reason: outcome.reason.slice(0, 500) }),
    ...(outcome.code === undefined ? {} : { code: outcome.code }),
    ...(outcome.strategy === undefined ? {} : { strategy: outcome.strategy }),
  };
}
