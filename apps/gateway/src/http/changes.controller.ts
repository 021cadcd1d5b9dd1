import { Controller, Get, HttpCode, Post, Req } from '@nestjs/common';
import {
  ErrorCode,
  SynclineError,
  batchOptionsSchema,
  batchRequestSchema,
  changesRequestSchema,
  entitiesRequestSchema,
  mutatePayloadSchema,
  type BatchItemOutcome,
  type BatchItemResult,
  type OutcomeMessage,
  type SyncResponsePayload,
} from '@syncline/contracts';
import { requireRead, requireWrite } from '../auth/authorize.js';
import type { Principal } from '../auth/token-verifier.js';
import { RateLimits } from '../limits/rate-limits.js';
import { PrometheusMetrics } from '../telemetry/prometheus-metrics.js';
import { MutationService } from '../mutations/mutation.service.js';
import { SyncService } from '../sync/sync.service.js';
import { HttpAuth } from './http-auth.js';
import type { HttpRequest } from './http-types.js';
import { parseInput } from './validation.js';

/**
 * Change history and batch submission over HTTP, for services and scripts that do not keep a
 * WebSocket open. Same permissions, validation and limits as the WebSocket edge.
 */
@Controller('api/v1')
export class ChangesController {
  constructor(
    private readonly auth: HttpAuth,
    private readonly syncs: SyncService,
    private readonly mutations: MutationService,
    private readonly limits: RateLimits,
    private readonly prometheus: PrometheusMetrics,
  ) {}

  /**
   * The changes of an entity type after `since` (from the start without it), oldest first, at most
   * `limit`; `cursor` is the position to ask from next, `hasMore` whether to.
   */
  @Get('changes')
  async history(@Req() request: HttpRequest): Promise<Extract<SyncResponsePayload, { mode: 'changes' }>> {
    const principal = await this.auth.principal(request);
    const query = parseInput(changesRequestSchema, { ...request.query }, 'query');
    requireRead(principal, [query.entityType]);
    const answer = await this.syncs.answer(principal.tenant, withoutUndefined(query));
    if (answer.type === 'sync_required') {
      throw new SynclineError(
        ErrorCode.INVALID_CURSOR,
        `cursor ${answer.payload.cursor} is no longer served (${answer.payload.reason}): start again without \`since\``,
      );
    }
    return answer.payload as Extract<SyncResponsePayload, { mode: 'changes' }>;
  }

  /** The current state of an entity type (or one entity), paged by `pageToken`; `cursor` is where changes go on from. */
  @Get('entities')
  async entities(@Req() request: HttpRequest): Promise<Extract<SyncResponsePayload, { mode: 'snapshot' }>> {
    const principal = await this.auth.principal(request);
    const query = parseInput(entitiesRequestSchema, { ...request.query }, 'query');
    requireRead(principal, [query.entityType]);
    const answer = await this.syncs.answer(principal.tenant, { ...withoutUndefined(query), snapshot: true });
    return answer.payload as Extract<SyncResponsePayload, { mode: 'snapshot' }>;
  }

  /**
   * A batch of mutations: each item is validated, authorized and stored on its own. With
   * `?wait=true` each stored item also carries its final outcome.
   */
  @Post('changes')
  @HttpCode(200)
  async submit(@Req() request: HttpRequest): Promise<{ results: BatchItemResult[] }> {
    const receivedAt = Date.now();
    const principal = await this.auth.principal(request);
    const { wait } = parseInput(batchOptionsSchema, { ...request.query }, 'query');
    const { mutations } = parseInput(batchRequestSchema, request.body, 'body', { itemsKey: 'mutations' });
    const results = await Promise.all(
      mutations.map((item, index) => this.submitOne(principal, item, index, receivedAt, wait === 'true')),
    );
    return { results };
  }

  private async submitOne(
    principal: Principal,
    item: unknown,
    index: number,
    receivedAt: number,
    wait: boolean,
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
      const outcome = wait ? await this.mutations.recordedOutcome(principal.tenant, payload.mutationId) : undefined;
      return {
        index,
        mutationId: payload.mutationId,
        status: 'accepted',
        duplicate,
        ...(outcome ? { outcome: outcomeOf(outcome) } : {}),
      };
    } catch (error) {
      const failure = SynclineError.is(error) ? error : new SynclineError(ErrorCode.INTERNAL, 'internal error');
      this.prometheus.mutations.inc({ edge: 'http', result: failure.code });
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

function outcomeOf(outcome: Omit<OutcomeMessage, 'connectionId'>): BatchItemOutcome {
  return {
    status: outcome.status as BatchItemOutcome['status'],
    version: outcome.version,
    ...(outcome.data === undefined ? {} : { data: outcome.data }),
    ...(outcome.vectorClock === undefined ? {} : { vectorClock: outcome.vectorClock }),
    ...(outcome.strategy === undefined ? {} : { strategy: outcome.strategy }),
    ...(outcome.reason === undefined ? {} : { reason: outcome.reason }),
    ...(outcome.code === undefined ? {} : { code: outcome.code }),
  };
}

/** Drops absent query parameters, which the sync request's optional fields must not hold as `undefined`. */
function withoutUndefined<T extends object>(value: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]: Exclude<T[K], undefined>;
  };
}

function mutationIdOf(item: unknown): string | undefined {
  const id = (item as { mutationId?: unknown } | null)?.mutationId;
  return typeof id === 'string' ? id.slice(0, 128) : undefined;
}
