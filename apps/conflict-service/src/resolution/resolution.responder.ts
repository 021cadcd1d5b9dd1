import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Msg, NatsConnection } from '@nats-io/nats-core';
import { QueueGroup, Subjects, conflictRequestSchema, type ConflictRequest } from '@syncline/contracts';
import {
  CONFIG,
  JsonResponder,
  LOGGER,
  METRICS_REGISTRY,
  NATS,
  TELEMETRY,
  SpanKind,
  endSpan,
  extractTraceContext,
  type Logger,
  type Telemetry,
} from '@syncline/platform';
import { Counter, type Registry } from 'prom-client';
import type { ConflictServiceConfig } from '../config.js';
import { ResolutionService } from './resolution.service.js';

/** The NATS edge of the service: requests on `<ns>.conflict.resolve`, in a queue group. */
@Injectable()
export class ResolutionResponder implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly responder: JsonResponder;
  private readonly resolved: Counter<'strategy' | 'winner'>;

  constructor(
    private readonly resolutions: ResolutionService,
    @Inject(NATS) nats: NatsConnection,
    @Inject(CONFIG) private readonly config: ConflictServiceConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(TELEMETRY) private readonly telemetry: Telemetry,
    @Inject(METRICS_REGISTRY) registry: Registry,
  ) {
    this.responder = new JsonResponder(nats, QueueGroup.conflictService, logger);
    this.resolved = new Counter({
      name: 'syncline_conflict_resolutions_total',
      help: 'Conflicts resolved by this service, by strategy and winner (client, server, merged)',
      labelNames: ['strategy', 'winner'],
      registers: [registry],
    });
  }

  onApplicationBootstrap(): void {
    const subject = new Subjects(this.config.SYNC_NAMESPACE).conflictResolve();
    this.responder.serve(subject, conflictRequestSchema, (request, msg) => this.resolve(request, msg));
    this.logger.info({ subject }, 'resolving conflicts');
  }

  async onApplicationShutdown(): Promise<void> {
    // A worker waiting for an answer holds its batch and the entity's row lock: answer first.
    await this.responder.stop();
  }

  private async resolve(request: ConflictRequest, msg: Msg) {
    const span = this.telemetry.tracer.startSpan(
      'conflict.resolve',
      {
        kind: SpanKind.SERVER,
        attributes: { 'sync.tenant': request.tenant, 'sync.entity_type': request.entityType },
      },
      extractTraceContext(msg.headers),
    );
    try {
      const response = await this.resolutions.resolve(request);
      span.setAttributes({ 'sync.strategy': response.strategy, 'sync.winner': response.winner });
      this.resolved.inc({ strategy: response.strategy, winner: response.winner });
      endSpan(span);
      return response;
    } catch (error) {
      endSpan(span, error);
      throw error;
    }
  }
}
