import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import {
  QueueGroup,
  Subjects,
  policyChangedSchema,
  policyLookupSchema,
  type PolicyAnswer,
  type PolicyChanged,
} from '@syncline/contracts';
import { Counter, type Registry } from 'prom-client';
import {
  CONFIG,
  JsonResponder,
  LOGGER,
  METRICS_REGISTRY,
  NATS,
  decodeJson,
  encodeJson,
  type Logger,
} from '@syncline/platform';
import type { ConflictServiceConfig } from '../config.js';
import { PolicyService } from './policy.service.js';

/**
 * Tells the sync workers which strategy decides each entity type's conflicts, and announces a
 * change to every worker and every replica of this service, so a new policy holds at once
 * everywhere rather than when caches expire.
 */
@Injectable()
export class PolicyResponder implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly responder: JsonResponder;
  private readonly subjects: Subjects;
  private announcements: Subscription | undefined;
  private readonly lookups: Counter<'strategy'>;

  constructor(
    private readonly policies: PolicyService,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) private readonly config: ConflictServiceConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(METRICS_REGISTRY) registry: Registry,
  ) {
    this.responder = new JsonResponder(nats, QueueGroup.conflictService, logger);
    this.subjects = new Subjects(config.SYNC_NAMESPACE);
    this.lookups = new Counter({
      name: 'syncline_conflict_policy_lookups_total',
      help: 'Policy lookups of sync workers this service answered, by the strategy it answered',
      labelNames: ['strategy'],
      registers: [registry],
    });
  }

  onApplicationBootstrap(): void {
    this.responder.serve(this.subjects.conflictPolicy(), policyLookupSchema, async (lookup): Promise<PolicyAnswer> => {
      const strategy = await this.policies.strategyFor(lookup.tenant, lookup.entityType);
      this.lookups.inc({ strategy });
      return { strategy, maxAgeMs: this.config.POLICY_CACHE_TTL_MS };
    });
    this.announcements = this.nats.subscribe(this.subjects.conflictPolicyChanged(), {
      callback: (_error, msg) => {
        const changed = policyChangedSchema.safeParse(safeDecode(msg.data));
        if (changed.success) this.policies.forget(changed.data.tenant, changed.data.entityType);
        else this.logger.warn({ subject: msg.subject }, 'malformed policy announcement ignored');
      },
    });
    this.logger.info({ subject: this.subjects.conflictPolicy() }, 'serving conflict policies');
  }

  /** Announces that a policy was set; every worker and replica drops what it kept of it. */
  async announce(changed: PolicyChanged): Promise<void> {
    this.policies.forget(changed.tenant, changed.entityType);
    this.nats.publish(this.subjects.conflictPolicyChanged(), encodeJson(changed));
    await this.nats.flush();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.responder.stop();
    await this.announcements?.drain();
  }
}

function safeDecode(data: Uint8Array): unknown {
  try {
    return decodeJson(data);
  } catch {
    return undefined;
  }
}
