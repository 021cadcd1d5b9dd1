import type { AdminRequest } from './bus/admin.js';
import { assertName, encodeEntityIdToken } from './identifiers.js';

/**
 * Every subject of the platform is built here; no other file holds a subject string.
 *
 * `namespace` is the first token of every subject (default `sync`), so several deployments or
 * test runs can share one NATS account without seeing each other.
 *
 *   <ns>.mut.<tenant>.<type>.<id>     client and backend mutations (stream MUTATIONS)
 *   <ns>.chg.<tenant>.<type>.<id>     committed changes, one per entity version (stream CHANGES)
 *   <ns>.conflict.policy              which strategy decides an entity type's conflicts (queue group)
 *   <ns>.conflict.policy.changed      a policy was set: whoever keeps policies drops it
 *   <ns>.outcome.<gatewayId>          a mutation's outcome, sent to the gateway that took it
 *   <ns>.limits.usage                 mutations each gateway accepted per tenant: shared rate limits
 *   <ns>.query.<name>                 read queries served by the sync workers (queue group)
 */
export class Subjects {
  constructor(readonly namespace: string) {
    assertName('namespace', namespace);
  }

  mutation(tenant: string, entityType: string, entityId: string): string {
    return this.entitySubject('mut', tenant, entityType, entityId);
  }

  /** Everything MUTATIONS holds. */
  allMutations(): string {
    return `${this.namespace}.mut.>`;
  }

  change(tenant: string, entityType: string, entityId: string): string {
    return this.entitySubject('chg', tenant, entityType, entityId);
  }

  /** Every change of one entity type of one tenant: what a subscription listens to. */
  changesOfType(tenant: string, entityType: string): string {
    return `${this.namespace}.chg.${assertName('tenant', tenant)}.${assertName('entity type', entityType)}.>`;
  }

  /** Every change of one tenant. */
  changesOfTenant(tenant: string): string {
    return `${this.namespace}.chg.${assertName('tenant', tenant)}.>`;
  }

  /** Everything CHANGES holds. */
  allChanges(): string {
    return `${this.namespace}.chg.>`;
  }

  /** Policy lookups, answered by the conflict services. */
  conflictPolicy(): string {
    return `${this.namespace}.conflict.policy`;
  }

  /** Announcements that a policy changed, heard by every worker and conflict service. */
  conflictPolicyChanged(): string {
    return `${this.namespace}.conflict.policy.changed`;
  }

  outcome(gatewayId: string): string {
    return `${this.namespace}.outcome.${assertName('gateway id', gatewayId)}`;
  }

  /** Each gateway's recent mutations per tenant, heard by every gateway (rate limits hold cluster-wide). */
  tenantUsage(): string {
    return `${this.namespace}.limits.usage`;
  }

  /** Administration requests (conflict policies, recorded conflicts), answered by the conflict services. */
  admin(request: AdminRequest): string {
    return `${this.namespace}.admin.${request}`;
  }

  /**
   * The advisory nats-server publishes when a stream gets a new leader (JetStream's own subject,
   * outside the namespace).
   */
  streamLeaderElected(stream: string): string {
    return `$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.${assertName('stream', stream)}`;
  }

  query(name: QueryName): string {
    return `${this.namespace}.query.${name}`;
  }

  private entitySubject(kind: string, tenant: string, entityType: string, entityId: string): string {
    return [
      this.namespace,
      kind,
      assertName('tenant', tenant),
      assertName('entity type', entityType),
      encodeEntityIdToken(entityId),
    ].join('.');
  }
}

/** Queries the sync workers answer over request/reply. */
export const QueryName = {
  /** Changes of an entity type since a cursor, or of one entity since a version, from PostgreSQL. */
  changes: 'changes',
  /** Current state of an entity type (paged), or of one entity. */
  snapshot: 'snapshot',
  /** The recorded outcome of a mutation id, for resent mutations. */
  outcome: 'outcome',
  /** The recorded outcomes of several mutation ids: a gateway recovering outcomes that are overdue. */
  outcomes: 'outcomes',
  /** Whether a worker reaches PostgreSQL. */
  health: 'health',
  /** What a tenant has stored. */
  stats: 'stats',
} as const;
export type QueryName = (typeof QueryName)[keyof typeof QueryName];

/** Queue groups: every replica of a service joins one, so each request is served once. */
export const QueueGroup = {
  conflictService: 'conflict-service',
  syncWorker: 'sync-worker',
} as const;
