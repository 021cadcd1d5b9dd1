import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import { ErrorCode, QueueGroup, Subjects, SynclineError, conflictRequestSchema } from '@syncline/contracts';
import {
  CONFIG,
  LOGGER,
  METRICS_REGISTRY,
  NATS,
  TELEMETRY,
  SpanKind,
  decodeJson,
  encodeJson,
  endSpan,
  extractTraceContext,
  replyError,
  type Logger,
  type Telemetry,
} from '@syncline/platform';
import { Counter, type Registry } from 'prom-client';
import type { ConflictServiceConfig } from '../config.js';
import { ResolutionService } from './resolution.service.js';

/** The NATS edge of the service: requests on `<ns>.conflict.resolve`, in a queue group. */
@Injectable()
export class ResolutionResponder implements OnApplicationBootstrap, OnApplicationShutdown {
  private subscription: Subscription | undefined;
  /** Requests received and not yet answered. */
  private readonly answering = new Set<Promise<void>>();
  private readonly resolved: Counter<'strategy' | 'winner'>;

  constructor(
    private readonly resolutions: ResolutionService,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) private readonly config: ConflictServiceConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(TELEMETRY) private readonly telemetry: Telemetry,
    @Inject(METRICS_REGISTRY) registry: Registry,
  ) {
    this.resolved = new Counter({
      name: 'syncline_conflict_resolutions_total',
      help: 'Conflicts resolved by this service, by strategy and winner (client, server, merged)',
      labelNames: ['strategy', 'winner'],
      registers: [registry],
    });
  }

  onApplicationBootstrap(): void {
    const subject = new Subjects(this.config.SYNC_NAMESPACE).conflictResolve();
    this.subscription = this.nats.subscribe(subject, {
      queue: QueueGroup.conflictService,
      callback: (error, msg) => {
        if (error) {
          this.logger.error({ err: error }, 'subscription failed');
          return;
        }
        const answer = this.answer(msg);
        this.answering.add(answer);
        void answer.finally(() => this.answering.delete(answer));
      },
    });
    this.logger.info({ subject }, 'resolving conflicts');
  }

  async onApplicationShutdown(): Promise<void> {
    // Drain: requests already received are answered before the connection closes.
    await this.subscription?.drain();
    // `drain()` resolves once the last request was handed to the callback, not once it was
    // answered: an answer may still wait for its policy in PostgreSQL. Without waiting for it the
    // process closed NATS and exited first, and the worker that asked held its batch (and the
    // entity's row lock) until its request timed out, then had JetStream redeliver the batch.
    await Promise.allSettled(this.answering);
  }

  private async answer(msg: Msg): Promise<void> {
    const span = this.telemetry.tracer.startSpan(
      'conflict.resolve',
      { kind: SpanKind.SERVER },
      extractTraceContext(msg.headers),
    );
    try {
      const request = conflictRequestSchema.safeParse(safeDecode(msg.data));
      if (!request.success) {
        throw new SynclineError(
          ErrorCode.VALIDATION_FAILED,
          `invalid conflict request: ${request.error.issues[0]?.message}`,
        );
      }
      span.setAttributes({ 'sync.tenant': request.data.tenant, 'sync.entity_type': request.data.entityType });
      const response = await this.resolutions.resolve(request.data);
      span.setAttributes({ 'sync.strategy': response.strategy, 'sync.winner': response.winner });
      this.resolved.inc({ strategy: response.strategy, winner: response.winner });
      msg.respond(encodeJson(response));
      endSpan(span);
    } catch (error) {
      if (!SynclineError.is(error)) this.logger.error({ err: error }, 'conflict resolution failed');
      msg.respond(encodeJson(replyError(error)));
      endSpan(span, error);
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
