import { Inject, Injectable } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { SyncPositions } from '@syncline/contracts';
import { CONFIG, NATS } from '@syncline/platform';
import type { GatewayConfig } from '../config.js';

/** Where CHANGES stands: its epoch (for cursors) and its first and last sequences. */
@Injectable()
export class StreamPositionService {
  private jsm: JetStreamManager | undefined;
  private currentEpoch: string | undefined;

  constructor(
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) private readonly config: GatewayConfig,
  ) {}

  /** The epoch of the CHANGES stream, from its creation time: the same on every gateway. */
  get epoch(): string {
    if (!this.currentEpoch) throw new Error('stream position not loaded');
    return this.currentEpoch;
  }

  async load(): Promise<void> {
    await this.state();
  }

  async state(): Promise<{ epoch: string; firstSeq: number; lastSeq: number }> {
    this.jsm ??= await jetstreamManager(this.nats);
    const info = await this.jsm.streams.info(this.config.CHANGES_STREAM);
    this.currentEpoch = SyncPositions.epochOf(info.created);
    return { epoch: this.currentEpoch, firstSeq: info.state.first_seq, lastSeq: info.state.last_seq };
  }
}
