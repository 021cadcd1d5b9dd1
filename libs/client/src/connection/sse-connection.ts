import { createParser, type EventSourceMessage } from 'eventsource-parser';
import {
  CloseCode,
  PROTOCOL_VERSION,
  type BatchItemResult,
  type ErrorPayload,
  type ServerFrame,
  type WelcomePayload,
} from '@syncline/contracts';
import { TypedEmitter } from '../events.js';
import { backoffDelay } from './backoff.js';
import {
  ConnectionError,
  ConnectionErrorCode,
  type ConnectionEvents,
  type ConnectionState,
  type OutgoingFrame,
  type SyncConnection,
} from './connection.js';

export interface SseConnectionOptions {
  /** The gateway's HTTP base, e.g. `https://sync.example.com`. */
  readonly httpUrl: string;
  readonly token: string | (() => string | Promise<string>);
  readonly fetch?: typeof fetch;
  readonly autoReconnect?: boolean;
  readonly maxRetries?: number;
  readonly retryDelay?: number;
  readonly maxRetryDelay?: number;
  /** A stream silent for this long (no event, no heartbeat comment) counts as lost (default 45 s). */
  readonly silenceTimeout?: number;
}

type Payload = Record<string, unknown>;

/**
 * The protocol over Server-Sent Events and HTTP, for networks where WebSockets do not get
 * through. It speaks to the client in the same frames as a WebSocket connection: each subscribed
 * entity type is one SSE stream resumed with its cursor as `Last-Event-ID`; `sync` is a GET, and
 * `mutate` a POST that waits for the outcome. A lost stream drops the whole connection, and the
 * reconnection resubscribes every type from its cursor and resends what is pending, as with a
 * WebSocket.
 */
export class SseConnection extends TypedEmitter<ConnectionEvents> implements SyncConnection {
  private currentState: ConnectionState = 'disconnected';
  private readonly streams = new Map<string, AbortController>();
  private readonly fetch: typeof fetch;
  private generation = 0;
  private attempts = 0;
  private welcomedBefore = false;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private frameCounter = 0;

  constructor(private readonly options: SseConnectionOptions) {
    super();
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  get state(): ConnectionState {
    return this.currentState;
  }

  get isConnected(): boolean {
    return this.currentState === 'connected';
  }

  async connect(): Promise<WelcomePayload> {
    const generation = this.generation;
    this.setState(this.welcomedBefore ? 'reconnecting' : 'connecting');
    try {
      const response = await this.fetch(`${this.options.httpUrl}/health`);
      if (!response.ok) throw new Error(`health answered ${response.status}`);
    } catch (cause) {
      if (generation === this.generation) this.lose(`the gateway is unreachable: ${(cause as Error).message}`);
      throw new ConnectionError(ConnectionErrorCode.CONNECTION_FAILED, 'the gateway is unreachable', cause);
    }
    const welcome: WelcomePayload = {
      protocolVersion: PROTOCOL_VERSION,
      connectionId: `sse-${Math.random().toString(36).slice(2, 10)}`,
      gatewayId: 'http',
      userId: '',
      tenant: '',
      serverTime: Date.now(),
      heartbeatIntervalMs: 0,
      maxFrameBytes: 0,
    };
    const reconnected = this.welcomedBefore;
    this.welcomedBefore = true;
    this.attempts = 0;
    this.setState('connected');
    this.emit('welcome', welcome);
    this.emit('connected', { welcome, reconnected });
    return welcome;
  }

  send(frame: OutgoingFrame): string | undefined {
    if (!this.isConnected) return undefined;
    const id = frame.id ?? `sse-${++this.frameCounter}`;
    const payload = frame.payload as Payload;
    const generation = this.generation;
    void this.handle(frame.type, payload, id).catch((error: unknown) => {
      if (generation !== this.generation) return;
      this.reply({ type: 'error', id, payload: errorPayload(error, id) });
      // The gateway did not answer at all (not an HTTP error): as a broken socket would, that ends the connection.
      if (!(error instanceof HttpFrameError)) this.lose(`a request failed: ${(error as Error).message}`);
    });
    return id;
  }

  dispose(): void {
    this.stop();
    this.setState('disconnected');
    this.removeAllListeners();
  }

  // ---------------------------------------------------------------------------------------------
  // Frames

  private async handle(type: string, payload: Payload, id: string): Promise<void> {
    switch (type) {
      case 'subscribe':
        return this.subscribe(
          payload['entityTypes'] as string[],
          (payload['cursors'] ?? {}) as Record<string, string>,
          id,
        );
      case 'unsubscribe':
        for (const entityType of payload['entityTypes'] as string[]) this.closeStream(entityType);
        return this.reply({ type: 'unsubscribed', id, payload: { entityTypes: payload['entityTypes'] as string[] } });
      case 'sync':
        return this.sync(payload, id);
      case 'mutate':
        return this.mutate(payload, id);
      case 'ping': {
        const started = Date.now();
        await this.fetch(`${this.options.httpUrl}/health`);
        this.emit('pong', { rttMs: Date.now() - started });
        return this.reply({ type: 'pong', id, payload: { serverTime: Date.now() } });
      }
      default:
        throw new ConnectionError(ConnectionErrorCode.PROTOCOL_ERROR, `${type} is not available over SSE`);
    }
  }

  private async subscribe(entityTypes: string[], cursors: Record<string, string>, id: string): Promise<void> {
    const states = await Promise.all(
      entityTypes.map((entityType) => this.openStream(entityType, cursors[entityType], id)),
    );
    const subscriptions = states.filter((state) => state !== undefined);
    if (subscriptions.length > 0 || entityTypes.length === 0)
      this.reply({ type: 'subscribed', id, payload: { subscriptions } });
  }

  private async sync(payload: Payload, id: string): Promise<void> {
    const query = new URLSearchParams();
    for (const key of ['entityType', 'entityId', 'sinceVersion', 'pageToken', 'limit', 'since']) {
      if (payload[key] !== undefined) query.set(key, String(payload[key]));
    }
    const path = payload['snapshot'] ? 'entities' : 'changes';
    const body = await this.request(`/api/v1/${path}?${query}`);
    this.reply({ type: 'sync_response', id, payload: body as never });
  }

  private async mutate(payload: Payload, id: string): Promise<void> {
    const { results } = (await this.request('/api/v1/changes?wait=true', {
      method: 'POST',
      body: JSON.stringify({ mutations: [payload] }),
    })) as { results: BatchItemResult[] };
    const result = results[0];
    if (!result || result.status === 'error') {
      this.reply({
        type: 'error',
        id,
        payload: {
          code: (result?.code ?? 'INTERNAL') as ErrorPayload['code'],
          message: result?.message ?? 'no result',
          ref: id,
          ...(result?.retryAfterMs ? { retryAfterMs: result.retryAfterMs } : {}),
        },
      });
      return;
    }
    const ref = {
      mutationId: result.mutationId,
      entityType: payload['entityType'] as string,
      entityId: payload['entityId'] as string,
    };
    this.reply({ type: 'ack', id, payload: { status: 'accepted', ...ref } });
    // Without an outcome in time, the client fetches the entity's changes when the version is missing.
    if (result.outcome)
      this.reply({
        type: 'ack',
        id,
        payload: { ...ref, ...result.outcome, ...(result.duplicate ? { duplicate: true } : {}) },
      });
  }

  // ---------------------------------------------------------------------------------------------
  // Streams

  /** Opens one type's stream; resolves with its subscription state once the server accepted it. */
  private async openStream(entityType: string, cursor: string | undefined, id: string) {
    this.closeStream(entityType);
    const controller = new AbortController();
    this.streams.set(entityType, controller);
    const generation = this.generation;
    const response = await this.fetch(
      `${this.options.httpUrl}/api/v1/sync/events?entityTypes=${encodeURIComponent(entityType)}`,
      {
        headers: {
          accept: 'text/event-stream',
          authorization: `Bearer ${await this.token()}`,
          ...(cursor ? { 'last-event-id': cursor } : {}),
        },
        signal: controller.signal,
      },
    );
    if (!response.ok || !response.body) {
      this.streams.delete(entityType);
      throw await httpError(response);
    }
    let current = cursor;
    const subscribed = { entityType, cursor: cursor ?? '', replayed: 0 };
    void this.pump(response.body, controller, generation, (event) => {
      if (event.event === 'delta') {
        const delta = JSON.parse(event.data) as { cursor?: string };
        current = delta.cursor ?? current;
        this.reply({ type: 'delta', payload: delta as never });
      } else if (event.event === 'sync_required') {
        const data = JSON.parse(event.data) as { reason: 'cursor_expired' | 'epoch_changed' };
        this.closeStream(entityType);
        this.reply({ type: 'sync_required', id, payload: { entityType, reason: data.reason, cursor: current ?? '' } });
      } else if (event.event === 'error') {
        // The gateway ends a stream for a reason (token expiry, too slow, shutting down): start over.
        if (generation === this.generation) this.lose(`the stream of ${entityType} ended: ${event.data}`);
      }
    });
    return subscribed;
  }

  private async pump(
    body: ReadableStream<Uint8Array>,
    controller: AbortController,
    generation: number,
    onEvent: (event: EventSourceMessage) => void,
  ): Promise<void> {
    const parser = createParser({ onEvent });
    const decoder = new TextDecoder();
    const reader = body.getReader();
    const silence = this.options.silenceTimeout ?? 45_000;
    let timer = setTimeout(() => controller.abort(), silence);
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        clearTimeout(timer);
        timer = setTimeout(() => controller.abort(), silence);
        parser.feed(decoder.decode(value, { stream: true }));
      }
    } catch {
      // aborted (on purpose, or after a silence) or broken: told apart below
    } finally {
      clearTimeout(timer);
    }
    const stillWanted = [...this.streams.values()].includes(controller);
    if (generation === this.generation && stillWanted) this.lose('an event stream ended');
  }

  private closeStream(entityType: string): void {
    const controller = this.streams.get(entityType);
    this.streams.delete(entityType);
    controller?.abort();
  }

  // ---------------------------------------------------------------------------------------------
  // Lifecycle

  /** A stream or the gateway was lost: drop everything, and reconnect with backoff. */
  private lose(reason: string): void {
    const wasConnected = this.isConnected;
    this.stop();
    const willReconnect = (this.options.autoReconnect ?? true) && this.attempts < (this.options.maxRetries ?? Infinity);
    this.setState(willReconnect ? 'reconnecting' : 'error');
    if (wasConnected) this.emit('disconnected', { code: CloseCode.GOING_AWAY, reason, willReconnect });
    if (!willReconnect) {
      this.emit('reconnect:failed', { attempts: this.attempts });
      return;
    }
    this.attempts += 1;
    const delay = backoffDelay(this.attempts, {
      minDelayMs: this.options.retryDelay ?? 1000,
      maxDelayMs: this.options.maxRetryDelay ?? 30_000,
    });
    this.emit('reconnect:scheduled', { attempt: this.attempts, delay });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.connect().catch(() => undefined);
    }, delay);
  }

  /** Ends every stream and timer of the current generation. */
  private stop(): void {
    this.generation += 1;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    for (const entityType of [...this.streams.keys()]) this.closeStream(entityType);
  }

  private setState(state: ConnectionState): void {
    if (state === this.currentState) return;
    const previous = this.currentState;
    this.currentState = state;
    this.emit('state', { state, previous });
  }

  private reply(frame: Omit<ServerFrame, 'timestamp'> & { id?: string }): void {
    this.emit('frame', { ...frame, timestamp: Date.now() } as ServerFrame);
  }

  private async request(path: string, init: { method?: string; body?: string } = {}): Promise<unknown> {
    const response = await this.fetch(`${this.options.httpUrl}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${await this.token()}`, 'content-type': 'application/json' },
    });
    if (!response.ok) throw await httpError(response);
    return response.json();
  }

  private async token(): Promise<string> {
    const token = this.options.token;
    return typeof token === 'function' ? token() : token;
  }
}

/** An HTTP error answer as the `error` payload a WebSocket frame would have carried. */
class HttpFrameError extends Error {
  constructor(readonly payload: Omit<ErrorPayload, 'ref'>) {
    super(payload.message);
  }
}

async function httpError(response: Response): Promise<HttpFrameError> {
  const body = (await response.json().catch(() => ({}))) as Partial<ErrorPayload>;
  return new HttpFrameError({
    code: (body.code ?? (response.status >= 500 ? 'UNAVAILABLE' : 'INTERNAL')) as ErrorPayload['code'],
    message: body.message ?? `HTTP ${response.status}`,
    ...(body.retryAfterMs === undefined ? {} : { retryAfterMs: body.retryAfterMs }),
  });
}

function errorPayload(error: unknown, ref: string): ErrorPayload {
  if (error instanceof HttpFrameError) return { ...error.payload, ref };
  return { code: 'UNAVAILABLE', message: (error as Error).message, ref, retryAfterMs: 1000 };
}
