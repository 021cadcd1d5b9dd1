import { Controller, Get, HttpCode, Inject, Req, Res } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  QueryName,
  Subjects,
  healthQueryResultSchema,
  statsQueryResultSchema,
  type StatsQueryResult,
} from '@syncline/contracts';
import { CONFIG, NATS, requestJson } from '@syncline/platform';
import { requireAdmin } from '../auth/authorize.js';
import type { GatewayConfig } from '../config.js';
import { ConnectionRegistry } from '../connections/connection.registry.js';
import { HttpAuth } from '../http/http-auth.js';
import type { HttpRequest, HttpResponse } from '../http/http-types.js';
import { SseService } from '../sse/sse.service.js';
import { PrometheusMetrics } from '../telemetry/prometheus-metrics.js';

type Check = 'ok' | string;

/** How long readiness waits for a dependency: probes must answer quickly. */
const CHECK_TIMEOUT_MS = 2000;

@Controller()
export class HealthController {
  private readonly subjects: Subjects;

  constructor(
    private readonly connections: ConnectionRegistry,
    private readonly sse: SseService,
    private readonly metrics: PrometheusMetrics,
    private readonly auth: HttpAuth,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) private readonly config: GatewayConfig,
  ) {
    this.subjects = new Subjects(config.SYNC_NAMESPACE);
  }

  /** Liveness: the process answers. */
  @Get('health')
  @HttpCode(200)
  health(): { status: 'ok' } {
    return { status: 'ok' };
  }

  /**
   * Readiness, with every dependency's state. Only what the gateway itself needs decides the
   * status (NATS and both streams): with the workers or PostgreSQL down it still takes mutations
   * into JetStream and serves live changes, so taking every gateway out of rotation would turn a
   * partial outage into a full one. Their state is reported for operators and alerts.
   */
  @Get('ready')
  async ready(@Res() response: HttpResponse): Promise<void> {
    const [nats, changes, mutations, workers, postgres] = await Promise.all([
      Promise.resolve<Check>(this.nats.isClosed() ? 'NATS connection closed' : 'ok'),
      this.streamCheck(this.config.CHANGES_STREAM),
      this.streamCheck(this.config.MUTATIONS_STREAM),
      this.metrics.workerConsumer().then((info) => (info ? 'ok' : 'the workers\u2019 consumer does not exist')),
      this.postgresCheck(),
    ]);
    const ready = nats === 'ok' && changes === 'ok' && mutations === 'ok';
    response.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' });
    response.end(
      JSON.stringify({
        status: ready ? 'ready' : 'not ready',
        checks: { nats, changesStream: changes, mutationsStream: mutations, workerConsumer: workers, postgres },
      }),
    );
  }

  /** Prometheus text format. */
  @Get('metrics')
  async prometheus(@Res() response: HttpResponse): Promise<void> {
    const body = await this.metrics.registry.metrics();
    response.writeHead(200, { 'content-type': this.metrics.registry.contentType }).end(body);
  }

  /**
   * For administrators: the platform's backlog, this gateway's connections and users, and what
   * the caller's tenant has stored and has connected here.
   */
  @Get('stats')
  async stats(@Req() request: HttpRequest): Promise<Record<string, unknown>> {
    const principal = await this.auth.principal(request);
    requireAdmin(principal);
    const [stored, consumer, mutationsInfo] = await Promise.all([
      requestJson(
        this.nats,
        this.subjects.query(QueryName.stats),
        { tenant: principal.tenant },
        statsQueryResultSchema,
        {
          timeoutMs: this.config.REQUEST_TIMEOUT_MS,
        },
      ).catch((): StatsQueryResult | undefined => undefined),
      this.metrics.workerConsumer(),
      jetstreamManager(this.nats).then((jsm) => jsm.streams.info(this.config.MUTATIONS_STREAM)),
    ]);
    const total = mutationsInfo.state.last_seq;
    const pending = consumer ? consumer.num_pending + consumer.num_ack_pending : undefined;
    const connections = [...this.connections.all()];
    const ofTenant = connections.filter((connection) => connection.tenant === principal.tenant);
    return {
      mutations: { total, pending: pending ?? null, synced: pending === undefined ? null : total - pending },
      gateway: {
        activeConnections: connections.length + this.sse.size,
        activeUsers: new Set(connections.map((connection) => `${connection.tenant}/${connection.principal.userId}`))
          .size,
      },
      tenant: {
        name: principal.tenant,
        changes: stored?.changes ?? null,
        entities: stored?.entities ?? null,
        activeConnections: ofTenant.length,
        activeUsers: new Set(ofTenant.map((connection) => connection.principal.userId)).size,
      },
    };
  }

  private async streamCheck(name: string): Promise<Check> {
    try {
      const jsm = await jetstreamManager(this.nats, { timeout: CHECK_TIMEOUT_MS });
      await jsm.streams.info(name);
      return 'ok';
    } catch (error) {
      return `stream ${name} unreachable: ${(error as Error).message}`;
    }
  }

  private async postgresCheck(): Promise<Check> {
    try {
      await requestJson(this.nats, this.subjects.query(QueryName.health), {}, healthQueryResultSchema, {
        timeoutMs: CHECK_TIMEOUT_MS,
      });
      return 'ok';
    } catch (error) {
      return `no worker reached PostgreSQL: ${(error as Error).message}`;
    }
  }
}
