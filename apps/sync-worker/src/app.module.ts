import { Module, type DynamicModule } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { DATA_SOURCE, METRICS_REGISTRY, runtimeProviders, type Runtime } from '@syncline/platform';
import type { Registry } from 'prom-client';
import type { SyncWorkerConfig } from './config.js';
import { ConflictPolicies } from './conflicts/conflict-policies.js';
import { ConflictResolver } from './conflicts/conflict-resolver.js';
import { BatchProcessor } from './mutations/batch-processor.service.js';
import { EntityStoreRepository } from './mutations/entity-store.repository.js';
import { MutationConsumer } from './mutations/mutation.consumer.js';
import { MutationDecoder } from './mutations/mutation-decoder.js';
import { RejectedMessageRepository } from './mutations/rejected-message.repository.js';
import { ChangePublisher } from './outbox/change-publisher.service.js';
import { OutboxRelayJob } from './outbox/outbox-relay.job.js';
import { OutboxRepository } from './outbox/outbox.repository.js';
import { OutcomeNotifier } from './outcomes/outcome-notifier.js';
import { QueryRepository } from './queries/query.repository.js';
import { QueryResponder } from './queries/query.responder.js';
import { RetentionJob } from './retention/retention.job.js';
import { WorkerMetrics } from './telemetry/worker-metrics.js';

@Module({})
export class AppModule {
  static register(runtime: Runtime<SyncWorkerConfig>, dataSource: DataSource, registry: Registry): DynamicModule {
    return {
      module: AppModule,
      providers: [
        ...runtimeProviders(runtime),
        { provide: DATA_SOURCE, useValue: dataSource },
        { provide: METRICS_REGISTRY, useValue: registry },
        WorkerMetrics,
        EntityStoreRepository,
        RejectedMessageRepository,
        ConflictPolicies,
        ConflictResolver,
        BatchProcessor,
        OutboxRepository,
        ChangePublisher,
        OutboxRelayJob,
        OutcomeNotifier,
        MutationDecoder,
        MutationConsumer,
        QueryRepository,
        QueryResponder,
        RetentionJob,
      ],
    };
  }
}
