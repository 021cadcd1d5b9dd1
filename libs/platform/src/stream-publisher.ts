import {
  createInbox,
  headers as natsHeaders,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from '@nats-io/nats-core';
import { JetStreamApiError, JetStreamError } from '@nats-io/jetstream';

/** JetStream's answer to a stored message. */
export interface StoredAck {
  readonly stream: string;
  readonly seq: number;
  /** The message id was seen within the duplicate window: nothing was stored, `seq` is the original's. */
  readonly duplicate: boolean;
}

export interface StreamPublishOptions {
  /** Deduplication id: a second message with it inside the stream's duplicate window is dropped. */
  readonly msgID?: string;
  /** The message is stored only if the subject's last message has this sequence (0: none). */
  readonly expectLastSubjectSequence?: number;
  readonly headers?: MsgHdrs;
}

interface Waiting {
  readonly resolve: (ack: StoredAck) => void;
  readonly reject: (error: Error) => void;
  readonly deadline: number;
}

/** How often answers that never came are failed; a publish fails between its timeout and this much later. */
const SWEEP_INTERVAL_MS = 250;

/**
 * Publishes to JetStream streams and resolves with the stored message's sequence, for the paths
 * every mutation takes.
 *
 * It speaks the same protocol as `jetstream(nc).publish()` (a core publish with a reply subject;
 * the stream answers there), but answers arrive on one subscription, matched by the reply
 * subject's last token, and timeouts are checked by one timer. The client library's publish is a
 * `request()`: a timer and an `Error` with a stack trace per message, which on this path cost more
 * than the publish itself. Publishes made in one turn of the event loop leave in one write.
 */
export class StreamPublisher {
  private readonly prefix: string;
  private readonly subscription: Subscription;
  private readonly waiting = new Map<string, Waiting>();
  private readonly sweeper: NodeJS.Timeout;
  private next = 0;

  constructor(
    private readonly nats: NatsConnection,
    private readonly timeoutMs: number,
  ) {
    this.prefix = createInbox();
    this.subscription = nats.subscribe(`${this.prefix}.*`, { callback: (_error, msg) => this.answer(msg) });
    this.sweeper = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.sweeper.unref();
  }

  publish(subject: string, payload: Uint8Array, options: StreamPublishOptions = {}): Promise<StoredAck> {
    const token = (this.next++).toString(36);
    const headers = options.headers ?? natsHeaders();
    if (options.msgID !== undefined) headers.set('Nats-Msg-Id', options.msgID);
    if (options.expectLastSubjectSequence !== undefined) {
      headers.set('Nats-Expected-Last-Subject-Sequence', String(options.expectLastSubjectSequence));
    }
    return new Promise<StoredAck>((resolve, reject) => {
      this.waiting.set(token, { resolve, reject, deadline: performance.now() + this.timeoutMs });
      try {
        this.nats.publish(subject, payload, { reply: `${this.prefix}.${token}`, headers });
      } catch (error) {
        this.waiting.delete(token);
        reject(error as Error);
      }
    });
  }

  /** Fails what is still unanswered and stops listening. */
  close(): void {
    clearInterval(this.sweeper);
    this.subscription.unsubscribe();
    for (const [token, waiting] of this.waiting) {
      this.waiting.delete(token);
      waiting.reject(new JetStreamError('publisher closed before the stream answered'));
    }
  }

  private answer(msg: Msg): void {
    const token = msg.subject.slice(this.prefix.length + 1);
    const waiting = this.waiting.get(token);
    if (!waiting) return;
    this.waiting.delete(token);
    if (msg.headers?.code === 503) {
      waiting.reject(
        new JetStreamError('no stream answered: JetStream is not enabled or no stream captures the subject'),
      );
      return;
    }
    try {
      const body = msg.json<{ stream?: string; seq?: number; duplicate?: boolean; error?: ApiErrorBody }>();
      if (body.error) waiting.reject(new JetStreamApiError(body.error));
      else if (typeof body.stream !== 'string' || typeof body.seq !== 'number') {
        waiting.reject(new JetStreamError('invalid ack response'));
      } else waiting.resolve({ stream: body.stream, seq: body.seq, duplicate: body.duplicate === true });
    } catch (error) {
      waiting.reject(error as Error);
    }
  }

  private sweep(): void {
    const now = performance.now();
    for (const [token, waiting] of this.waiting) {
      if (waiting.deadline > now) continue;
      this.waiting.delete(token);
      waiting.reject(new JetStreamError(`no answer from the stream within ${this.timeoutMs} ms`));
    }
  }
}

interface ApiErrorBody {
  readonly code: number;
  readonly err_code: number;
  readonly description: string;
}
