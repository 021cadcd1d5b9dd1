import { Inject, Injectable } from '@nestjs/common';
import { resolveConflict, type ConflictInput, type Resolution } from '@syncline/conflict';
import type { ConflictStrategy, PolicyLookup } from '@syncline/contracts';
import { TELEMETRY, SpanKind, endSpan, type Context, type Telemetry } from '@syncline/platform';
import { ConflictPolicies } from './conflict-policies.js';

export interface ResolvedConflict extends Resolution {
  readonly strategy: ConflictStrategy;
}

/** Where the strategy of an entity type comes from: the conflict services, through {@link ConflictPolicies}. */
export interface StrategySource {
  strategyFor(lookup: PolicyLookup): ConflictStrategy | Promise<ConflictStrategy>;
}

export interface ConflictCase extends ConflictInput {
  readonly tenant: string;
  readonly entityType: string;
}

/**
 * Resolves a concurrent mutation with its entity type's strategy: the pure, deterministic
 * strategies every replica shares (`@syncline/conflict`), on a policy the conflict services own.
 */
@Injectable()
export class ConflictResolver {
  constructor(
    @Inject(ConflictPolicies) private readonly policies: StrategySource,
    @Inject(TELEMETRY) private readonly telemetry: Telemetry,
  ) {}

  async resolve(conflict: ConflictCase, trace: Context): Promise<ResolvedConflict> {
    const strategy = await this.policies.strategyFor({ tenant: conflict.tenant, entityType: conflict.entityType });
    const span = this.telemetry.tracer.startSpan(
      'conflict.resolve',
      {
        kind: SpanKind.INTERNAL,
        attributes: { 'sync.entity_type': conflict.entityType, 'sync.strategy': strategy },
      },
      trace,
    );
    const resolution = resolveConflict(strategy, conflict);
    span.setAttribute('sync.winner', resolution.winner);
    endSpan(span);
    return { strategy, ...resolution };
  }
}
