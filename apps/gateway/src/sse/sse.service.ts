import { Inject, Injectable, type BeforeApplicationShutdown } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/nats-core';
import { ErrorCode, Subjects, SyncPositions, SynclineError, type SseRequest } from '@syncline/contracts';
import { CONFIG, LOGGER, NATS, type Logger } from '@syncline/platform';
import type { Principal } from '../auth/token-verifier.js';
import type { GatewayConfig } from '../config.js';
import { OrderedChanges } from '../fanout/ordered-changes.js';
import { StreamPositionService } from '../fanout/stream-position.service.js';
import type { HttpResponse } from '../http/http-types.js';
import { SseStream } from './sse-stream.js';

/** Opens SSE streams and ends them all when the gateway stops, so clients reconnect elsewhere. */
@Injectable()
export class SseService implements BeforeApplicationShutdown {
  private readonly streams = new Set<SseStream>();
  private readonly subjects: Subjects;

  constructor(
    private readonly positions: StreamPositionService,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) private readonly config: GatewayConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.subjects = new Subjects(config.SYNC_NAMESPACE);
  }

  get size(): number {
    return this.streams.size;
  }

  async open(
    principal: Principal,
    request: SseRequest,
    cursor: string | undefined,
    response: HttpResponse,
  ): Promise<void> {
    const { epoch, firstSeq, lastSeq } = await this.positions.state();
    const startSeq = this.startSeqOf(cursor, { epoch, firstSeq, lastSeq });
    if (startSeq === undefined) {
      // Like a WebSocket resume from too old a cursor: the client takes a snapshot and starts anew.
      response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
      const reason = SyncPositions.parse(cursor ?? '')?.epoch === epoch ? 'cursor_expired' : 'epoch_changed';
      response.end(`event: sync_required\ndata: ${JSON.stringify({ reason, cursor })}\n\n`);
      return;
    }
    const messages = await OrderedChanges.open(
      this.nats,
      this.config.CHANGES_STREAM,
      this.filterOf(principal.tenant, request),
      startSeq,
      this.logger,
    );
    const stream = new SseStream(
      response,
      messages,
      {
        principal,
        epoch,
        entityTypes: request.entityTypes.length > 1 ? new Set(request.entityTypes) : undefined,
        events: request.events ? new Set(request.events) : undefined,
        heartbeatMs: this.config.SSE_HEARTBEAT_MS,
        maxBufferedBytes: this.config.MAX_BUFFERED_BYTES,
      },
      (closed) => this.streams.delete(closed),
    );
    this.streams.add(stream);
    await stream.run();
  }

  /** Before the HTTP server closes: it waits for open responses, and a stream never ends by itself. */
  beforeApplicationShutdown(): void {
    for (const stream of this.streams)
      stream.end('error', { code: ErrorCode.UNAVAILABLE, message: 'gateway shutting down: reconnect' });
  }

  /** The first stream sequence to send, or undefined when the cursor is past serving. */
  private startSeqOf(
    cursor: string | undefined,
    { epoch, firstSeq, lastSeq }: { epoch: string; firstSeq: number; lastSeq: number },
  ): number | undefined {
    if (cursor === undefined) return lastSeq + 1;
    const position = SyncPositions.parse(cursor);
    if (!position) throw new SynclineError(ErrorCode.INVALID_CURSOR, `invalid Last-Event-ID "${cursor.slice(0, 80)}"`);
    if (position.epoch !== epoch || position.seq + 1 < firstSeq) return undefined;
    if (position.seq > lastSeq)
      throw new SynclineError(ErrorCode.INVALID_CURSOR, 'Last-Event-ID is ahead of the change feed');
    return position.seq + 1;
  }

  /** The narrowest subject that covers the request: one entity, one type, or the tenant. */
  private filterOf(tenant: string, request: SseRequest): string {
    const [only] = request.entityTypes;
    if (request.entityTypes.length > 1 || only === undefined) return this.subjects.changesOfTenant(tenant);
    if (request.entityId !== undefined) return this.subjects.change(tenant, only, request.entityId);
    return this.subjects.changesOfType(tenant, only);
  }
}
