import { Module, type DynamicModule } from '@nestjs/common';
import { runtimeProviders, type Runtime } from '@syncline/platform';
import { SessionService } from './auth/session.service.js';
import { TokenVerifier } from './auth/token-verifier.js';
import { Overload } from './limits/overload.js';
import { RateLimits } from './limits/rate-limits.js';
import { TenantUsageExchange } from './limits/tenant-usage.exchange.js';
import { WorkerQueue } from './limits/worker-queue.js';
import type { GatewayConfig } from './config.js';
import { ConnectionRegistry } from './connections/connection.registry.js';
import { FrameRouter } from './connections/frame-router.js';
import { SyncGateway } from './connections/sync.gateway.js';
import { ChangeFeedService } from './fanout/change-feed.service.js';
import { StreamPositionService } from './fanout/stream-position.service.js';
import { SubscriptionService } from './fanout/subscription.service.js';
import { HealthController } from './health/health.controller.js';
import { AdminController } from './http/admin.controller.js';
import { ChangesController } from './http/changes.controller.js';
import { HttpAuth } from './http/http-auth.js';
import { SseController } from './sse/sse.controller.js';
import { SseService } from './sse/sse.service.js';
import { MutationService } from './mutations/mutation.service.js';
import { OutcomeAcks } from './mutations/outcome-acks.js';
import { OverdueOutcomes } from './mutations/overdue-outcomes.js';
import { ReplayService } from './resume/replay.service.js';
import { SyncService } from './sync/sync.service.js';
import { DeliveryMetrics } from './telemetry/delivery-metrics.js';
import { PrometheusMetrics } from './telemetry/prometheus-metrics.js';

@Module({})
export class AppModule {
  static register(runtime: Runtime<GatewayConfig>): DynamicModule {
    return {
      module: AppModule,
      controllers: [HealthController, ChangesController, SseController, AdminController],
      providers: [
        ...runtimeProviders(runtime),
        TokenVerifier,
        ConnectionRegistry,
        StreamPositionService,
        PrometheusMetrics,
        DeliveryMetrics,
        ChangeFeedService,
        ReplayService,
        SubscriptionService,
        SessionService,
        RateLimits,
        TenantUsageExchange,
        WorkerQueue,
        Overload,
        HttpAuth,
        SseService,
        OutcomeAcks,
        OverdueOutcomes,
        MutationService,
        SyncService,
        FrameRouter,
        SyncGateway,
      ],
    };
  }
}
