import { Inject, Injectable } from '@nestjs/common';
import { ErrorCode, SynclineError, type ClientFrame } from '@syncline/contracts';
import { CONFIG } from '@syncline/platform';
import type { GatewayConfig } from '../config.js';
import type { Connection } from '../connections/connection.js';
import { TokenBucket } from './token-bucket.js';

/** Idle tenant buckets are forgotten once there are this many. */
const MAX_TENANT_BUCKETS = 10_000;

/**
 * Per-connection frame and per-tenant mutation rates (token buckets, bursts of twice the rate).
 * A refused frame is not carried out and gets `RATE_LIMITED` with `retryAfterMs`; the
 * connection stays open.
 *
 * A connection lives on one gateway. A tenant's clients spread over all of them, so each
 * gateway also debits its tenant buckets by what the others accepted (`TenantUsageExchange`):
 * the limit holds for the cluster, not once per gateway.
 */
@Injectable()
export class RateLimits {
  private readonly connections = new WeakMap<Connection, TokenBucket>();
  private readonly tenants = new Map<string, TokenBucket>();
  /** Mutations accepted per tenant since the last report to the other gateways. */
  private accepted = new Map<string, number>();

  constructor(@Inject(CONFIG) private readonly config: GatewayConfig) {}

  /** Counts one frame of a connection, whatever it holds: garbage floods too. */
  admitFrame(connection: Connection): void {
    let bucket = this.connections.get(connection);
    if (!bucket) {
      const rate = this.config.RATE_LIMIT_FRAMES_PER_SECOND;
      bucket = new TokenBucket(rate, rate * 2);
      this.connections.set(connection, bucket);
    }
    refuseIfWaiting(bucket.take(), 'this connection sends frames too fast');
  }

  /** Counts a `mutate` frame against its tenant's rate. */
  admitMutation(frame: ClientFrame, tenant: string): void {
    if (frame.type === 'mutate') this.admitTenantMutation(tenant);
  }

  /** Counts one mutation of a tenant, whichever connection or request of this gateway it came from. */
  admitTenantMutation(tenant: string): void {
    refuseIfWaiting(this.tenantBucket(tenant).take(), 'this tenant sends mutations too fast');
    this.accepted.set(tenant, (this.accepted.get(tenant) ?? 0) + 1);
  }

  /** What other gateways accepted of a tenant's mutations comes off this gateway's bucket too. */
  debitTenant(tenant: string, count: number): void {
    this.tenantBucket(tenant).debit(count);
  }

  /** The mutations accepted per tenant since the previous call. */
  takeAccepted(): Map<string, number> {
    const accepted = this.accepted;
    this.accepted = new Map();
    return accepted;
  }

  private tenantBucket(tenant: string): TokenBucket {
    let bucket = this.tenants.get(tenant);
    if (!bucket) {
      if (this.tenants.size >= MAX_TENANT_BUCKETS) this.forgetIdleTenants();
      const rate = this.config.RATE_LIMIT_TENANT_MUTATIONS_PER_SECOND;
      bucket = new TokenBucket(rate, rate * 2);
      this.tenants.set(tenant, bucket);
    }
    return bucket;
  }

  private forgetIdleTenants(): void {
    const now = Date.now();
    for (const [tenant, bucket] of this.tenants) if (bucket.isFull(now)) this.tenants.delete(tenant);
  }
}

function refuseIfWaiting(waitMs: number, message: string): void {
  if (waitMs > 0) throw new SynclineError(ErrorCode.RATE_LIMITED, message, { retryAfterMs: waitMs });
}
