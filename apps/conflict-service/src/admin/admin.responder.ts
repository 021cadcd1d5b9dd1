import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import {
  AdminRequest,
  ErrorCode,
  QueueGroup,
  Subjects,
  SynclineError,
  conflictsRequestSchema,
  policyRequestSchema,
  policyUpdateSchema,
  type Policy,
} from '@syncline/contracts';
import { CONFIG, LOGGER, NATS, decodeJson, encodeJson, replyError, type Logger } from '@syncline/platform';
import type { z } from 'zod';
import type { ConflictServiceConfig } from '../config.js';
import { PolicyService } from '../policies/policy.service.js';
import { AdminRepository } from './admin.repository.js';

/**
 * Answers the gateway's administration requests: read and set a conflict policy, list recorded
 * conflicts. The gateway has checked the admin right; the tenant comes from its token.
 */
@Injectable()
export class AdminResponder implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly subscriptions: Subscription[] = [];

  constructor(
    private readonly repository: AdminRepository,
    private readonly policies: PolicyService,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) private readonly config: ConflictServiceConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    const subjects = new Subjects(this.config.SYNC_NAMESPACE);
    this.answer(subjects.admin(AdminRequest.getPolicy), policyRequestSchema, (request) => this.policy(request));
    this.answer(subjects.admin(AdminRequest.putPolicy), policyUpdateSchema, async (request) => {
      await this.repository.putPolicy(request);
      this.policies.forget(request.tenant, request.entityType);
      return this.policy(request);
    });
    this.answer(subjects.admin(AdminRequest.listConflicts), conflictsRequestSchema, (request) =>
      this.repository.conflicts(request),
    );
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all(this.subscriptions.map((subscription) => subscription.drain()));
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

  private answer<S extends z.ZodType>(subject: string, schema: S, handle: (request: z.output<S>) => Promise<unknown>) {
    const subscription = this.nats.subscribe(subject, {
      queue: QueueGroup.conflictService,
      callback: (error, msg) => {
        if (!error) void this.respond(msg, schema, handle);
      },
    });
    this.subscriptions.push(subscription);
  }

  private async respond<S extends z.ZodType>(msg: Msg, schema: S, handle: (request: z.output<S>) => Promise<unknown>) {
    try {
      const request = schema.safeParse(safeDecode(msg.data));
      if (!request.success) {
        throw new SynclineError(ErrorCode.VALIDATION_FAILED, `invalid request: ${request.error.issues[0]?.message}`);
      }
      msg.respond(encodeJson(await handle(request.data)));
    } catch (error) {
      if (!SynclineError.is(error)) this.logger.error({ err: error, subject: msg.subject }, 'admin request failed');
      msg.respond(encodeJson(replyError(error)));
    }
  }
}

function safeDecode(data: Uint8Array): unknown {
  try {
    return decodeJson(data);
  } catch {
    return undefined;
  }
}
