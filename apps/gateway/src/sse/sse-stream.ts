import { ErrorCode, type SseEventType } from '@syncline/contracts';
import type { Principal } from '../auth/token-verifier.js';
import { deltaPayloadJson, toChangeMessage, type ChangeMessage } from '../fanout/change-message.js';
import type { OrderedChanges } from '../fanout/ordered-changes.js';
import type { HttpResponse } from '../http/http-types.js';

export interface SseStreamOptions {
  readonly principal: Principal;
  readonly epoch: string;
  /** Set when the consumer's subject filter is wider than the requested types (several types). */
  readonly entityTypes: ReadonlySet<string> | undefined;
  readonly events: ReadonlySet<SseEventType> | undefined;
  readonly heartbeatMs: number;
  readonly maxBufferedBytes: number;
}

/**
 * One open `text/event-stream` response fed by its own ordered consumer on CHANGES, started right
 * after the client's `Last-Event-ID`: the replay and the live changes are one ordered sequence,
 * so a resumed stream carries exactly the events that were missed. Each event's id is its cursor.
 */
export class SseStream {
  private closed = false;
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly response: HttpResponse,
    private readonly messages: OrderedChanges,
    private readonly options: SseStreamOptions,
    private readonly onClose: (stream: SseStream) => void,
  ) {}

  /** Sends the headers, then changes until the client goes, the token expires or the gateway stops. */
  async run(): Promise<void> {
    this.response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no', // nginx: do not buffer the stream
    });
    this.response.write('retry: 1000\n\n');
    this.response.on('close', () => this.close());
    this.timers.push(setInterval(() => this.write(': heartbeat\n\n'), this.options.heartbeatMs));
    this.watchExpiry();
    try {
      for await (const msg of this.messages) {
        if (this.closed) break;
        this.forward(toChangeMessage(msg));
      }
    } finally {
      this.close();
    }
  }

  /** Ends the stream with a last event saying why; EventSource reconnects by itself. */
  end(event: string, data: unknown): void {
    this.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    this.close();
  }

  private forward(change: ChangeMessage): void {
    const { entityTypes, events, epoch } = this.options;
    if (entityTypes && !entityTypes.has(entityTypeOf(change.msg.subject))) return;
    if (events && !events.has(eventTypeOf(change))) return;
    this.write(`id: ${epoch}:${change.seq}\nevent: delta\ndata: ${deltaPayloadJson(change, epoch)}\n\n`);
    if (this.response.writableLength > this.options.maxBufferedBytes) {
      this.end('error', {
        code: ErrorCode.LIMIT_EXCEEDED,
        message: 'slow consumer: too far behind, reconnect with Last-Event-ID',
      });
    }
  }

  private watchExpiry(): void {
    const expiresAt = this.options.principal.expiresAt;
    if (expiresAt === undefined) return;
    const remaining = Math.min(expiresAt * 1000 - Date.now(), 2 ** 31 - 1);
    this.timers.push(
      setTimeout(
        () => this.end('error', { code: ErrorCode.AUTH_EXPIRED, message: 'token expired: reconnect with a fresh one' }),
        remaining,
      ),
    );
  }

  private write(text: string): void {
    if (!this.closed) this.response.write(text);
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    void this.messages.close();
    this.response.end();
    this.onClose(this);
  }
}

/** `<namespace>.chg.<tenant>.<entityType>.<entityId>` */
function entityTypeOf(subject: string): string {
  return subject.split('.')[3] ?? '';
}

function eventTypeOf(change: ChangeMessage): SseEventType {
  const body = JSON.parse(change.body) as { deleted?: boolean; version?: number };
  if (body.deleted) return 'deleted';
  return body.version === 1 ? 'created' : 'updated';
}
