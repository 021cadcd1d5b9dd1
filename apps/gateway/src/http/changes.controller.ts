import { Controller, Get, HttpCode, Post, Req } from '@nestjs/common';
import {
  ErrorCode,
  SynclineError,
  batchRequestSchema,
  changesRequestSchema,
  mutatePayloadSchema,
  type BatchItemResult,
  type SyncResponsePayload,
} from '@syncline/contracts';
import { requireRead, requireWrite } from '../auth/authorize.js';
import type { Principal } from '../auth/token-verifier.js';
import { RateLimits } from '../limits/rate-limits.js';
import { MutationService } from '../mutations/mutation.service.js';
import { SyncService } from '../sync/sync.service.js';
import { HttpAuth } from './http-auth.js';
import type { HttpRequest } from './http-types.js';
import { parseInput } from './validation.js';

/**
 * Change history and batch submission over HTTP, for services and scripts that do not keep a
 * WebSocket open. Same permissions, validation and limits as the WebSocket edge.
 */
@Controller('api/v1/changes')
export class ChangesController {
  constructor(
    private readonly auth: HttpAuth,
    private readonly syncs: SyncService,
    private readonly mutations: MutationService,
    private readonly limits: RateLimits,
  ) {}

  /**
   * The changes of an entity type after `since` (from the start without it), oldest first, at most
   * `limit`; `cursor` is the position to ask from next, `hasMore` whether to.
   */
  @Get()
  async history(@Req() request: HttpRequest): Promise<Extract<SyncResponsePayload, { mode: 'changes' }>> {
    const principal = await this.auth.principal(request);
    const query = parseInput(changesRequestSchema, { ...request.query }, 'query');
    requireRead(principal, [query.entityType]);
    const answer = await this.syncs.answer(principal.tenant, {
      entityType: query.entityType,
      ...(query.since === undefined ? {} : { since: query.since }),
      ...(query.limit === undefined ? {} : { limit: query.limit }),
    });
    if (answer.type === 'sync_required') {
      throw new SynclineError(
        ErrorCode.INVALID_CURSOR,
        `cursor ${answer.payload.cursor} is no longer served (${answer.payload.reason}): start again without \`since\``,
      );
    }
    return answer.payload as Extract<SyncResponsePayload, { mode: 'changes' }>;
  }

  /** A batch of mutations: each item is validated, authorized and stored on its own. */
  @Post()
  @HttpCode(200)
  async submit(@Req() request: HttpRequest): Promise<{ results: BatchItemResult[] }> {
    const receivedAt = Date.now();
    const principal = await this.auth.principal(request);
    const { mutations } = parseInput(batchRequestSchema, request.body, 'body', { checkValues: false });
    const results = await Promise.all(
      mutations.map((item, index) => this.submitOne(principal, item, index, receivedAt)),
    );
    return { results };
  }

  private async submitOne(
    principal: Principal,
    item: unknown,
    index: number,
    receivedAt: number,
  ): Promise<BatchItemResult> {
    const mutationId = mutationIdOf(item);
    try {
      const payload = parseInput(mutatePayloadSchema, item, `mutations.${index}`);
      requireWrite(principal, payload.entityType);
      this.limits.admitTenantMutation(principal.tenant);
      const { duplicate } = await this.mutations.store(
        { tenant: principal.tenant, userId: principal.userId },
        payload,
        receivedAt,
      );
      return { index, mutationId: payload.mutationId, status: 'accepted', duplicate };
    } catch (error) {
      const failure = SynclineError.is(error) ? error : new SynclineError(ErrorCode.INTERNAL, 'internal error');
      return {
        index,
        ...(mutationId === undefined ? {} : { mutationId }),
        status: 'error',
        code: failure.code,
        message: failure.message,
        ...(failure.retryAfterMs === undefined ? {} : { retryAfterMs: failure.retryAfterMs }),
      };
    }
  }
}

function mutationIdOf(item: unknown): string | undefined {
  const id = (item as { mutationId?: unknown } | null)?.mutationId;
  return typeof id === 'string' ? id.slice(0, 128) : undefined;
}
