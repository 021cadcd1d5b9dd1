import { Injectable } from '@nestjs/common';
import { resolveConflict } from '@syncline/conflict';
import type { ConflictRequest, ConflictResponse } from '@syncline/contracts';
import { PolicyService } from '../policies/policy.service.js';

@Injectable()
export class ResolutionService {
  constructor(private readonly policies: PolicyService) {}

  async resolve(request: ConflictRequest): Promise<ConflictResponse> {
    const strategy = await this.policies.strategyFor(request.tenant, request.entityType);
    const resolution = resolveConflict(strategy, {
      base: request.base,
      server: {
        data: request.server.data,
        hlc: request.server.hlc,
        ...(request.server.fieldHlcs ? { fieldHlcs: request.server.fieldHlcs } : {}),
      },
      client: { data: request.client.data, hlc: request.client.hlc },
    });
    return { strategy, result: resolution.result, winner: resolution.winner, contested: resolution.contested };
  }
}
