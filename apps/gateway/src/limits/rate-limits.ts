import { Inject, Injectable } from '@nestjs/common';
import { ErrorCode, SynclineError, type ClientFrame } from '@syncline/contracts';
import { CONFIG } from '@syncline/platform';
import type { GatewayConfig } from '../config.js';
import type { Connection } from '../connections/connection.js';
import { TokenBucket } from './token-bucket.js';

/** Idle tenant buckets are forgotten once there are this many. */
const MAX_TENANT_BUCKETS = 10_000;

/**
 * Per-connection frame and per-tenant mutation rates (token buckets, bursts of twice the rate),
 * enforced by each gateway on its own traffic. A refused frame is not carried out and gets
 * `RATE_LIMITED` with `retryAfterMs`; the connection stays open.
 */
@Injectable()
export class RateLimits {
  private readonly connections = new WeakMap<Connection, TokenBucket>();
  private readonly tenants = new Map<string, TokenBucket>();

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
    let bucket = this.tenants.get(tenant);
    if (!bucket) {
      if (this.tenants.size >= MAX_TENANT_BUCKETS) this.forgetIdleTenants();
      const rate = this.config.RATE_LIMIT_TENANT_MUTATIONS_PER_SECOND;
      bucket = new TokenBucket(rate, rate * 2);
      this.tenants.set(tenant, bucket);
    }
    refuseIfWaiting(bucket.take(), 'this tenant sends mutations too fast');
  }

  private forgetIdleTenants(): void {
    const now = Date.now();
    for (const [tenant, bucket] of this.tenants) if (bucket.isFull(now)) this.tenants.delete(tenant);
  }
}

function refuseIfWaiting(waitMs: number, message: string): void {
  if (waitMs > 0) throw new SynclineError(ErrorCode.RATE_LIMITED, message, { retryAfterMs: waitMs });
}
