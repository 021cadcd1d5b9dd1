import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/nats-core';
import { MAX_OUTCOMES_PER_QUERY, QueryName, Subjects, outcomesQueryResultSchema } from '@syncline/contracts';
import { CONFIG, LOGGER, NATS, onReconnect, requestJson, type Logger } from '@syncline/platform';
import type { GatewayConfig } from '../config.js';
import type { Connection } from '../connections/connection.js';
import { ConnectionRegistry } from '../connections/connection.registry.js';
import { OVERDUE_AFTER_MS } from './outcome-acks.js';

/** How often awaited outcomes are looked over. */
const SWEEP_INTERVAL_MS = 1_000;
/** The longest wait between two asks for the same outcome (it doubles from `OVERDUE_AFTER_MS`). */
const MAX_CHECK_INTERVAL_MS = 30_000;

/**
 * The final outcome of a mutation reaches its author even when the message carrying it is lost.
 * Outcomes travel on core NATS, at most once: one published while this gateway was cut off from
 * NATS (its server died, a network blip) is gone. The mutations ledger has every outcome, in the
 * same transaction as the effect, so an outcome this late is asked for there, in batches per
 * tenant, with growing intervals while the mutation is still queued; and every awaited outcome
 * is asked for as soon as this gateway has reconnected. The client, SDK or raw protocol, gets
 * the same `ack` it would have got, marked `duplicate` (the entity may have moved on since).
 */
@Injectable()
export class OverdueOutcomes implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly subjects: Subjects;
  private timer: NodeJS.Timeout | undefined;
  private sweeping = false;

  constructor(
    private readonly connections: ConnectionRegistry,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) private readonly config: GatewayConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.subjects = new Subjects(config.SYNC_NAMESPACE);
  }

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.sweep(), SWEEP_INTERVAL_MS);
    this.timer.unref();
    onReconnect(this.nats, () => {
      for (const connection of this.connections.all()) {
        for (const awaited of connection.awaitingOutcome.values()) awaited.checkAt = 0;
      }
      void this.sweep();
    });
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  private async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const due = this.dueByTenant(Date.now());
      for (const [tenant, mutations] of due) {
        for (let start = 0; start < mutations.length; start += MAX_OUTCOMES_PER_QUERY) {
          await this.recover(tenant, mutations.slice(start, start + MAX_OUTCOMES_PER_QUERY));
        }
      }
    } finally {
      this.sweeping = false;
    }
  }

  /** Awaited outcomes whose time to be asked for has come, by tenant. */
  private dueByTenant(now: number): Map<string, Array<{ connection: Connection; mutationId: string }>> {
    const due = new Map<string, Array<{ connection: Connection; mutationId: string }>>();
    for (const connection of this.connections.all()) {
      for (const [mutationId, awaited] of connection.awaitingOutcome) {
        if (awaited.checkAt > now) continue;
        awaited.checks += 1;
        awaited.checkAt = now + Math.min(OVERDUE_AFTER_MS * 2 ** awaited.checks, MAX_CHECK_INTERVAL_MS);
        let list = due.get(connection.tenant);
        if (!list) due.set(connection.tenant, (list = []));
        list.push({ connection, mutationId });
      }
    }
    return due;
  }

  private async recover(tenant: string, mutations: Array<{ connection: Connection; mutationId: string }>) {
    let result;
    try {
      result = await requestJson(
        this.nats,
        this.subjects.query(QueryName.outcomes),
        { tenant, mutationIds: mutations.map((m) => m.mutationId) },
        outcomesQueryResultSchema,
        { timeoutMs: this.config.REQUEST_TIMEOUT_MS },
      );
    } catch (error) {
      this.logger.debug({ err: error, tenant, count: mutations.length }, 'overdue outcomes not fetched; later');
      return;
    }
    const recorded = new Map(result.outcomes.map((outcome) => [outcome.mutationId, outcome]));
    for (const { connection, mutationId } of mutations) {
      const outcome = recorded.get(mutationId);
      const awaited = connection.awaitingOutcome.get(mutationId);
      // Answered meanwhile by the outcome message, or the connection is gone.
      if (!outcome || !awaited || !connection.isOpen) continue;
      connection.awaitingOutcome.delete(mutationId);
      connection.send('ack', outcome, awaited.frameId);
      this.logger.info({ mutationId, late: awaited.checks }, 'overdue outcome recovered from the ledger');
    }
  }
}
