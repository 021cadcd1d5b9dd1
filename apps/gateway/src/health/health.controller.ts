import { Controller, Get, HttpCode, Inject, ServiceUnavailableException } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/nats-core';
import { NATS } from '@syncline/platform';
import { ConnectionRegistry } from '../connections/connection.registry.js';
import { StreamPositionService } from '../fanout/stream-position.service.js';

@Controller()
export class HealthController {
  constructor(
    private readonly connections: ConnectionRegistry,
    private readonly positions: StreamPositionService,
    @Inject(NATS) private readonly nats: NatsConnection,
  ) {}

  /** Liveness: the process answers. */
  @Get('health')
  @HttpCode(200)
  health(): { status: 'ok' } {
    return { status: 'ok' };
  }

  /** Readiness: NATS is connected and the CHANGES stream answers. */
  @Get('ready')
  async ready(): Promise<{ status: 'ready'; connections: number }> {
    if (this.nats.isClosed())
      throw new ServiceUnavailableException({ status: 'not ready', reason: 'NATS connection closed' });
    try {
      await this.positions.state();
    } catch {
      throw new ServiceUnavailableException({ status: 'not ready', reason: 'CHANGES stream unreachable' });
    }
    return { status: 'ready', connections: this.connections.size };
  }
}
