import { Inject, Injectable } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { ConflictPolicyRecord } from '@syncline/persistence';
import { DATA_SOURCE } from '@syncline/platform';
import type { ConflictStrategy } from '@syncline/contracts';

@Injectable()
export class PolicyRepository {
  constructor(@Inject(DATA_SOURCE) private readonly dataSource: DataSource) {}

  async findStrategy(tenant: string, entityType: string): Promise<ConflictStrategy | undefined> {
    const row = await this.dataSource.getRepository(ConflictPolicyRecord).findOneBy({ tenant, entityType });
    return row?.strategy;
  }
}
