import { Injectable } from '@nestjs/common';
import { metrics, type Histogram } from '@opentelemetry/api';
import { PrometheusMetrics } from './prometheus-metrics.js';

/**
 * End-to-end latency: from the moment a gateway received a mutation to the moment a gateway
 * handed the resulting change to another client's socket. Gateways share NTP-synced clocks in
 * production; on one host the measure is exact.
 */
@Injectable()
export class DeliveryMetrics {
  constructor(private readonly prometheus: PrometheusMetrics) {}

  private readonly latency: Histogram = metrics
    .getMeter('syncline-gateway')
    .createHistogram('syncline.delivery.latency', {
      description: 'Gateway receive of a mutation to delivery of its change to another client',
      unit: 'ms',
      advice: { explicitBucketBoundaries: [0.5, 1, 2, 3, 5, 10, 20, 50, 100, 250, 500, 1000, 5000] },
    });

  recordDelivery(receivedAt: number, recipients: number): void {
    const elapsed = Date.now() - receivedAt;
    this.prometheus.deliveryLatency.observe(elapsed / 1000);
    for (let i = 0; i < recipients; i++) this.latency.record(elapsed);
  }
}
