import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import { MAX_TENANTS_PER_USAGE_REPORT, Subjects, tenantUsageSchema, type TenantUsage } from '@syncline/contracts';
import { CONFIG, LOGGER, NATS, decodeJson, encodeJson, randomInstanceId, type Logger } from '@syncline/platform';
import type { GatewayConfig } from '../config.js';
import { RateLimits } from './rate-limits.js';

/**
 * How often a gateway tells the others what it accepted. Between two reports each gateway may
 * admit up to its own bucket's tokens: with N gateways a tenant can exceed its limit by at most
 * (N - 1) × rate × this interval, on top of the burst.
 */
const REPORT_INTERVAL_MS = 100;

/**
 * Shares tenant rate limits between gateways over core NATS: every gateway publishes what it
 * accepted per tenant since its last report, and debits its own buckets by what the others
 * report. A report lost on the way only lets that tenant through a little more for a moment;
 * nothing waits on another gateway, so a mutation's admission costs no round trip.
 */
@Injectable()
export class TenantUsageExchange implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly subjects: Subjects;
  private readonly gatewayId: string;
  private subscription: Subscription | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly limits: RateLimits,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) private readonly config: GatewayConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.subjects = new Subjects(config.SYNC_NAMESPACE);
    this.gatewayId = config.INSTANCE_ID ?? randomInstanceId('gateway');
  }

  onApplicationBootstrap(): void {
    this.subscription = this.nats.subscribe(this.subjects.tenantUsage(), {
      callback: (_error, msg) => this.received(msg.data),
    });
    this.timer = setInterval(() => this.report(), REPORT_INTERVAL_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
    this.subscription?.unsubscribe();
  }

  private report(): void {
    const accepted = [...this.limits.takeAccepted()];
    for (let start = 0; start < accepted.length; start += MAX_TENANTS_PER_USAGE_REPORT) {
      const usage: TenantUsage = {
        gateway: this.gatewayId,
        accepted: Object.fromEntries(accepted.slice(start, start + MAX_TENANTS_PER_USAGE_REPORT)),
      };
      this.nats.publish(this.subjects.tenantUsage(), encodeJson(usage));
    }
  }

  private received(data: Uint8Array): void {
    let usage: TenantUsage;
    try {
      usage = tenantUsageSchema.parse(decodeJson(data));
    } catch (error) {
      this.logger.warn({ err: error, subject: this.subjects.tenantUsage() }, 'malformed tenant usage report ignored');
      return;
    }
    if (usage.gateway === this.gatewayId) return;
    for (const [tenant, count] of Object.entries(usage.accepted)) this.limits.debitTenant(tenant, count);
  }
}
