import { Module, type DynamicModule } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { DATA_SOURCE, METRICS_REGISTRY, runtimeProviders, type Runtime } from '@syncline/platform';
import type { Registry } from 'prom-client';
import { AdminRepository } from './admin/admin.repository.js';
import { AdminResponder } from './admin/admin.responder.js';
import type { ConflictServiceConfig } from './config.js';
import { PolicyRepository } from './policies/policy.repository.js';
import { PolicyService } from './policies/policy.service.js';
import { PolicyResponder } from './policies/policy.responder.js';

@Module({})
export class AppModule {
  static register(runtime: Runtime<ConflictServiceConfig>, dataSource: DataSource, registry: Registry): DynamicModule {
    return {
      module: AppModule,
      providers: [
        ...runtimeProviders(runtime),
        { provide: DATA_SOURCE, useValue: dataSource },
        { provide: METRICS_REGISTRY, useValue: registry },
        PolicyRepository,
        PolicyService,
        PolicyResponder,
        AdminRepository,
        AdminResponder,
      ],
    };
  }
}
