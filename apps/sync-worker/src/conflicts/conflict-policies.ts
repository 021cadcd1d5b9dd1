import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import {
  Subjects,
  policyAnswerSchema,
  policyChangedSchema,
  type ConflictStrategy,
  type PolicyLookup,
} from '@syncline/contracts';
import { CONFIG, LOGGER, NATS, decodeJson, requestJson, type Logger } from '@syncline/platform';
import type { SyncWorkerConfig } from '../config.js';

interface Kept {
  readonly strategy: ConflictStrategy;
  readonly expiresAt: number;
}

/**
 * The strategy of each entity type, as the conflict services answer it, kept until it expires or
 * a change is announced. A conflict is then resolved in the worker, with no round trip while the
 * batch waits. When the conflict services cannot be asked, a strategy kept before goes on being
 * used; a type never asked about fails its batch, which is retried.
 */
@Injectable()
export class ConflictPolicies implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly kept = new Map<string, Kept>();
  private readonly asking = new Map<string, Promise<ConflictStrategy>>();
  private readonly subjects: Subjects;
  private subscription: Subscription | undefined;

  constructor(
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) private readonly config: SyncWorkerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.subjects = new Subjects(config.SYNC_NAMESPACE);
  }

  onApplicationBootstrap(): void {
    this.subscription = this.nats.subscribe(this.subjects.conflictPolicyChanged(), {
      callback: (_error, msg) => {
        try {
          const changed = policyChangedSchema.parse(decodeJson(msg.data));
          this.kept.delete(keyOf(changed));
        } catch {
          this.logger.warn({ subject: msg.subject }, 'malformed policy announcement ignored');
        }
      },
    });
  }

  async onApplicationShutdown(): Promise<void> {
    await this.subscription?.drain();
  }

  strategyFor(lookup: PolicyLookup): ConflictStrategy | Promise<ConflictStrategy> {
    const key = keyOf(lookup);
    const kept = this.kept.get(key);
    if (kept && kept.expiresAt > performance.now()) return kept.strategy;
    let asking = this.asking.get(key);
    if (!asking) {
      asking = this.ask(lookup, kept).finally(() => this.asking.delete(key));
      this.asking.set(key, asking);
    }
    return asking;
  }

  private async ask(lookup: PolicyLookup, previous: Kept | undefined): Promise<ConflictStrategy> {
    try {
      const answer = await requestJson(this.nats, this.subjects.conflictPolicy(), lookup, policyAnswerSchema, {
        timeoutMs: this.config.REQUEST_TIMEOUT_MS,
      });
      this.kept.set(keyOf(lookup), { strategy: answer.strategy, expiresAt: performance.now() + answer.maxAgeMs });
      return answer.strategy;
    } catch (error) {
      if (!previous) throw error;
      this.logger.warn({ err: error, ...lookup }, 'conflict policy not refreshed; keeping the one known');
      return previous.strategy;
    }
  }
}

function keyOf({ tenant, entityType }: PolicyLookup): string {
  return `${tenant}\u0000${entityType}`;
}
