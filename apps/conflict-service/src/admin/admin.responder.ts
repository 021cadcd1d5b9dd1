import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  AdminRequest,
  QueueGroup,
  Subjects,
  conflictsRequestSchema,
  policyRequestSchema,
  policyUpdateSchema,
  rejectedMessagesRequestSchema,
  type Policy,
} from '@syncline/contracts';
import { CONFIG, JsonResponder, LOGGER, NATS, type Logger } from '@syncline/platform';
import type { ConflictServiceConfig } from '../config.js';
import { PolicyResponder } from '../policies/policy.responder.js';
import { PolicyService } from '../policies/policy.service.js';
import { AdminRepository } from './admin.repository.js';

/**
 * Answers the gateway's administration requests: read and set a conflict policy, list recorded
 * conflicts and the messages the workers refused. The gateway has checked the admin right; the
 * tenant comes from its token.
 */
@Injectable()
export class AdminResponder implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly responder: JsonResponder;

  constructor(
    private readonly repository: AdminRepository,
    private readonly policies: PolicyService,
    private readonly announcer: PolicyResponder,
    @Inject(NATS) nats: NatsConnection,
    @Inject(CONFIG) private readonly config: ConflictServiceConfig,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.responder = new JsonResponder(nats, QueueGroup.conflictService, logger);
  }

  onApplicationBootstrap(): void {
    const subjects = new Subjects(this.config.SYNC_NAMESPACE);
    this.responder.serve(subjects.admin(AdminRequest.getPolicy), policyRequestSchema, (request) =>
      this.policy(request),
    );
    this.responder.serve(subjects.admin(AdminRequest.putPolicy), policyUpdateSchema, async (request) => {
      await this.repository.putPolicy(request);
      await this.announcer.announce({ tenant: request.tenant, entityType: request.entityType });
      return this.policy(request);
    });
    this.responder.serve(subjects.admin(AdminRequest.listConflicts), conflictsRequestSchema, (request) =>
      this.repository.conflicts(request),
    );
    this.responder.serve(subjects.admin(AdminRequest.listRejectedMessages), rejectedMessagesRequestSchema, (request) =>
      this.repository.rejectedMessages(request),
    );
  }

  async onApplicationShutdown(): Promise<void> {
    await this.responder.stop();
  }

  private async policy(request: { tenant: string; entityType: string }): Promise<Policy> {
    const [strategy, updatedAt] = await Promise.all([
      this.policies.strategyFor(request.tenant, request.entityType),
      this.repository.policyUpdatedAt(request.tenant, request.entityType),
    ]);
    return {
      entityType: request.entityType,
      strategy,
      source: updatedAt ? 'policy' : 'default',
      ...(updatedAt ? { updatedAt: updatedAt.toISOString() } : {}),
    };
  }
}
