import { Inject, Injectable } from '@nestjs/common';
import type { JsMsg } from '@nats-io/jetstream';
import {
  Header,
  HybridLogicalClock,
  Subjects,
  findUnsafeJson,
  mutationMessageSchema,
  type MutationMessage,
} from '@syncline/contracts';
import {
  CONFIG,
  TELEMETRY,
  SpanKind,
  decodeJson,
  extractTraceContext,
  trace,
  traceparentOf,
  type Span,
  type Telemetry,
} from '@syncline/platform';
import type { SyncWorkerConfig } from '../config.js';
import type { PipelineItem } from './batch-pipeline.js';

/** A mutation taken from MUTATIONS, validated, on its way through the pipeline. */
export interface Delivery extends PipelineItem {
  readonly msg: JsMsg;
  readonly span: Span;
  /** When the worker took it (`performance.now()`), to keep it from going to another worker meanwhile. */
  readonly takenAt: number;
}

export type Decoded = { readonly ok: true; readonly value: Delivery } | { readonly ok: false; readonly reason: string };

const SUBJECT_MISMATCH = "subject does not match the mutation's tenant, entity type and id";

/**
 * Checks a MUTATIONS message as an edge checks client input: gateways wrote most of them, but a
 * backend service may publish here directly (NATS ingest), so each gets the same safe-JSON rules,
 * schema, clock skew bound and subject check. A message that fails can never succeed.
 */
@Injectable()
export class MutationDecoder {
  private readonly subjects: Subjects;
  /** Only to measure how far ahead a mutation's timestamp is. */
  private readonly clock: HybridLogicalClock;

  constructor(
    @Inject(CONFIG) private readonly config: SyncWorkerConfig,
    @Inject(TELEMETRY) private readonly telemetry: Telemetry,
  ) {
    this.subjects = new Subjects(config.SYNC_NAMESPACE);
    this.clock = new HybridLogicalClock(config.INSTANCE_ID ?? 'sync-worker');
  }

  decode(msg: JsMsg): Decoded {
    let body: unknown;
    try {
      body = decodeJson(msg.data);
    } catch {
      return { ok: false, reason: 'not valid JSON' };
    }
    const unsafe = findUnsafeJson(body);
    if (unsafe) return { ok: false, reason: `unsafe: ${unsafe}` };
    const parsed = mutationMessageSchema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return { ok: false, reason: `schema: ${issue?.path.join('.') || '(root)'}: ${issue?.message}` };
    }
    const mutation = parsed.data;
    const skew = this.clock.skewOf(mutation.hlc);
    if (skew > this.config.MAX_CLOCK_SKEW_MS) {
      return { ok: false, reason: `clock skew: hlc is ${skew} ms ahead of the worker's clock` };
    }
    if (!this.isOnOwnSubject(msg, mutation)) return { ok: false, reason: SUBJECT_MISMATCH };
    const producer = extractTraceContext(msg.headers);
    const span = this.telemetry.tracer.startSpan(
      'mutation.process',
      {
        kind: SpanKind.CONSUMER,
        attributes: { 'sync.mutation_id': mutation.mutationId, 'sync.entity_type': mutation.entityType },
      },
      producer,
    );
    const spanContext = trace.setSpan(producer, span);
    const receivedAt = Number(msg.headers?.get(Header.receivedAt));
    return {
      ok: true,
      value: {
        msg,
        span,
        takenAt: performance.now(),
        redelivered: msg.redelivered,
        incoming: {
          mutation,
          streamSeq: msg.seq,
          gatewayId: msg.headers?.get(Header.gatewayId) || null,
          connectionId: msg.headers?.get(Header.connectionId) || null,
          receivedAt: Number.isFinite(receivedAt) && receivedAt > 0 ? receivedAt : null,
          trace: spanContext,
          traceparent: traceparentOf(spanContext) ?? null,
        },
      },
    };
  }

  /**
   * Isolation (I6) for backend services: NATS permissions allow a service a set of subjects, so
   * the subject, not the body, says which tenant and entity it may write. A body that names
   * another tenant, entity type or entity than its subject is refused.
   */
  private isOnOwnSubject(msg: JsMsg, mutation: MutationMessage): boolean {
    return msg.subject === this.subjects.mutation(mutation.tenant, mutation.entityType, mutation.entityId);
  }
}
