import { Module, type DynamicModule } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { DATA_SOURCE, runtimeProviders, type Runtime } from '@syncline/platform';
import { AdminRepository } from './admin/admin.repository.js';
import { AdminResponder } from './admin/admin.responder.js';
import type { ConflictServiceConfig } from './config.js';
import { PolicyRepository } from './policies/policy.repository.js';
import { PolicyService } from './policies/policy.service.js';
import { ResolutionResponder } from './resolution/resolution.responder.js';
import { ResolutionService } from './resolution/resolution.service.js';

@Module({})
export class AppModule {
  static register(runtime: Runtime<ConflictServiceConfig>, dataSource: DataSource): DynamicModule {
    return {
      module: AppModule,
      providers: [
        ...runtimeProviders(runtime),
        { provide: DATA_SOURCE, useValue: dataSource },
        PolicyRepository,
        PolicyService,
        ResolutionService,
        ResolutionResponder,
        AdminRepository,
        AdminResponder,
      ],
    };
  }
}
