import type { INestApplicationContext } from '@nestjs/common';
import { WsAdapter } from '@nestjs/platform-ws';
import type { GatewayConfig } from '../config.js';

/**
 * The `ws` adapter with what depends on configuration, which a decorator cannot read:
 * per-message compression. Frames are parsed and routed by the gateway's own typed router, not
 * by event name, so the adapter parses nothing.
 */
export class SyncWsAdapter extends WsAdapter {
  constructor(
    app: INestApplicationContext,
    private readonly config: Pick<GatewayConfig, 'WS_COMPRESSION_MIN_BYTES'>,
  ) {
    super(app, { messageParser: () => undefined });
  }

  /**
   * Nest would give each client a message pipeline of its own (observables parsing every frame for
   * `@SubscribeMessage` handlers, of which the gateway has none): memory per socket and work per
   * frame for nothing. The gateway reads its sockets' messages itself.
   */
  override bindMessageHandlers(): void {}

  override create(port: number, options: Parameters<WsAdapter['create']>[1] = {}): ReturnType<WsAdapter['create']> {
    return super.create(port, { ...options, perMessageDeflate: this.perMessageDeflate() });
  }

  private perMessageDeflate(): false | Record<string, unknown> {
    const threshold = this.config.WS_COMPRESSION_MIN_BYTES;
    if (threshold === 0) return false;
    // No context takeover: a connection's zlib state is not kept between frames, so memory per
    // connection stays small with many connections, at some cost in ratio.
    return { threshold, serverNoContextTakeover: true, clientNoContextTakeover: true };
  }
}
