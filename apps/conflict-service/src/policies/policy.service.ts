import { Inject, Injectable } from '@nestjs/common';
import { CONFIG } from '@syncline/platform';
import type { ConflictStrategy } from '@syncline/contracts';
import type { ConflictServiceConfig } from '../config.js';
import { PolicyRepository } from './policy.repository.js';

interface CachedPolicy {
  readonly strategy: ConflictStrategy;
  readonly expiresAt: number;
}

/**
 * The strategy for a tenant's entity type: its row in `conflict_policies`, or the configured
 * default. Cached briefly; a change made through any replica is announced and drops it at once.
 */
@Injectable()
export class PolicyService {
  private readonly cache = new Map<string, CachedPolicy>();

  constructor(
    private readonly policies: PolicyRepository,
    @Inject(CONFIG) private readonly config: ConflictServiceConfig,
  ) {}

  /** Drops a cached strategy after it changed. */
  forget(tenant: string, entityType: string): void {
    this.cache.delete(`${tenant}\u0000${entityType}`);
  }

  async strategyFor(tenant: string, entityType: string): Promise<ConflictStrategy> {
    const key = `${tenant}\u0000${entityType}`;
    const cached = this.cache.get(key);
    if (cached && cached.expiresAt > Date.now()) return cached.strategy;
    const strategy = (await this.policies.findStrategy(tenant, entityType)) ?? this.config.DEFAULT_CONFLICT_STRATEGY;
    this.cache.set(key, { strategy, expiresAt: Date.now() + this.config.POLICY_CACHE_TTL_MS });
    return strategy;
  }
}
