import { Controller, Get, Inject, Put, Req } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  AdminRequest,
  Subjects,
  conflictsPageSchema,
  conflictsQuerySchema,
  entityTypeSchema,
  policyBodySchema,
  policySchema,
  rejectedMessagesPageSchema,
  rejectedMessagesQuerySchema,
  type ConflictsPage,
  type Policy,
  type RejectedMessagesPage,
} from '@syncline/contracts';
import { CONFIG, NATS, requestJson } from '@syncline/platform';
import type { z } from 'zod';
import { requireAdmin } from '../auth/authorize.js';
import type { GatewayConfig } from '../config.js';
import { HttpAuth } from './http-auth.js';
import type { HttpRequest } from './http-types.js';
import { parseInput } from './validation.js';

type RequestWithParams = HttpRequest & { readonly params: Record<string, string> };

/**
 * Administration of the caller's tenant, for tokens with the admin right: conflict policies per
 * entity type, the conflicts recorded with both sides, the base and the result, and the messages
 * backend services published that the workers refused.
 */
@Controller('api/v1')
export class AdminController {
  private readonly subjects: Subjects;

  constructor(
    private readonly auth: HttpAuth,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) private readonly config: GatewayConfig,
  ) {
    this.subjects = new Subjects(config.SYNC_NAMESPACE);
  }

  /** The strategy that decides conflicts of an entity type, and whether it is set or the default. */
  @Get('policies/:entityType')
  async policy(@Req() request: RequestWithParams): Promise<Policy> {
    const { tenant, entityType } = await this.adminOf(request);
    return this.ask(AdminRequest.getPolicy, { tenant, entityType }, policySchema);
  }

  /** Sets the strategy of an entity type (`{ "strategy": "merge" }`). */
  @Put('policies/:entityType')
  async setPolicy(@Req() request: RequestWithParams): Promise<Policy> {
    const { tenant, entityType } = await this.adminOf(request);
    const { strategy } = parseInput(policyBodySchema, request.body, 'body');
    return this.ask(AdminRequest.putPolicy, { tenant, entityType, strategy }, policySchema);
  }

  /** Recorded conflicts, newest first, optionally of one entity type or entity; paged with `before`. */
  @Get('conflicts')
  async conflicts(@Req() request: HttpRequest): Promise<ConflictsPage> {
    const principal = await this.auth.principal(request);
    requireAdmin(principal);
    const query = parseInput(conflictsQuerySchema, { ...request.query }, 'query');
    return this.ask(AdminRequest.listConflicts, { ...query, tenant: principal.tenant }, conflictsPageSchema);
  }

  /**
   * Messages published to MUTATIONS for this tenant that can never be applied, newest first, with
   * the reason; paged with `before`.
   */
  @Get('rejected-messages')
  async rejectedMessages(@Req() request: HttpRequest): Promise<RejectedMessagesPage> {
    const principal = await this.auth.principal(request);
    requireAdmin(principal);
    const query = parseInput(rejectedMessagesQuerySchema, { ...request.query }, 'query');
    return this.ask(
      AdminRequest.listRejectedMessages,
      { ...query, tenant: principal.tenant },
      rejectedMessagesPageSchema,
    );
  }

  private async adminOf(request: RequestWithParams): Promise<{ tenant: string; entityType: string }> {
    const principal = await this.auth.principal(request);
    requireAdmin(principal);
    const entityType = parseInput(entityTypeSchema, request.params['entityType'], 'entity type');
    return { tenant: principal.tenant, entityType };
  }

  private ask<S extends z.ZodType>(request: AdminRequest, body: unknown, schema: S): Promise<z.output<S>> {
    return requestJson(this.nats, this.subjects.admin(request), body, schema, {
      timeoutMs: this.config.REQUEST_TIMEOUT_MS,
    });
  }
}
