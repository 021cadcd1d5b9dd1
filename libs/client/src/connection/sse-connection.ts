import { createParser, type ParserCallbacks } from 'eventsource-parser';
import {
  CloseCode,
  PROTOCOL_VERSION,
  type BatchItemResult,
  type DeltaPayload,
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
 * through. It speaks to the client in the same frames as a WebSocket connection: `sync` is a GET,
 * `mutate` a POST that waits for the outcome, and every subscribed entity type arrives on one
 * event stream. One stream, not one per type: over HTTP/1.1 a browser opens at most six
 * connections to a host, and a seventh type would wait forever.
 *
 * The stream resumes from the oldest position among its types (`Last-Event-ID`); events a type
 * already has are dropped here, so each type sees its changes once and in order. Subscribing to
 * another type reopens the stream. A lost stream drops the whole connection, and the
 * reconnection resubscribes every type from its cursor and resends what is pending, as with a
 * WebSocket.
 */
export class SseConnection extends TypedEmitter<ConnectionEvents> implements SyncConnection {
  private currentState: ConnectionState = 'disconnected';
  /** The subscribed types, and how far each has been delivered. */
  private readonly types = new Map<string, StreamedType>();
  private stream: EventStream | undefined;
  /** The next (re)opening of the stream, shared by the subscriptions made meanwhile. */
  private opening: Promise<OpenedStream> | undefined;
  /** The opening under way: the next one waits for it rather than abort it halfway. */
  private openInFlight: Promise<unknown> = Promise.resolve();
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
        return this.unsubscribe(payload['entityTypes'] as string[], id);
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
    for (const entityType of entityTypes) this.types.set(entityType, streamedType(cursors[entityType]));
    let opened: OpenedStream;
    try {
      opened = await this.reopen();
    } catch (error) {
      // Refused (a type not allowed, say): the stream goes on for the types subscribed before.
      for (const entityType of entityTypes) this.types.delete(entityType);
      if (error instanceof HttpFrameError && this.types.size > 0) {
        this.reopen().catch((cause: unknown) =>
          this.lose(`the event stream did not reopen: ${(cause as Error).message}`),
        );
      }
      throw error;
    }
    const resync = opened.expired.find((type) => entityTypes.includes(type.entityType));
    if (resync) {
      this.reply({ type: 'sync_required', id, payload: resync });
      return;
    }
    // Where each type is now: deltas the stream replayed may already have been passed on.
    const subscriptions = entityTypes.flatMap((entityType) => {
      const type = this.types.get(entityType);
      return type ? [{ entityType, cursor: type.cursor ?? '', replayed: 0 }] : [];
    });
    this.reply({ type: 'subscribed', id, payload: { subscriptions } });
  }

  private unsubscribe(entityTypes: string[], id: string): void {
    // The stream keeps running for the other types; events of these are dropped from now on.
    for (const entityType of entityTypes) this.types.delete(entityType);
    if (this.types.size === 0) this.closeStream();
    this.reply({ type: 'unsubscribed', id, payload: { entityTypes } });
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

  /**
   * Opens the stream anew for the subscribed types, once for all the subscriptions made in the
   * same turn (a reconnection resubscribes every type at once).
   */
  private reopen(): Promise<OpenedStream> {
    this.opening ??= this.openInFlight
      .then(() => new Promise((resolve) => setTimeout(resolve, 0)))
      .then(() => {
        this.opening = undefined;
        const opened = this.openStream();
        this.openInFlight = opened.catch(() => undefined);
        return opened;
      });
    return this.opening;
  }

  /**
   * Opens one stream for every subscribed type, from the oldest of their positions, and resolves
   * once the gateway accepted it. A position the feed no longer holds ends the stream at once
   * with `sync_required`: the types at that position are dropped (the client takes a snapshot of
   * each) and the stream opens again for the others.
   */
  private async openStream(): Promise<OpenedStream> {
    this.closeStream();
    const expired: ExpiredType[] = [];
    while (this.types.size > 0) {
      const from = oldestOf(this.types);
      const outcome = await this.openFrom(from);
      if (outcome === 'open') break;
      for (const [entityType, type] of this.types) {
        if (type.cursor !== from?.cursor) continue;
        this.types.delete(entityType);
        expired.push({ entityType, reason: outcome.reason, cursor: type.cursor ?? '' });
      }
    }
    return { expired };
  }

  private async openFrom(from: StreamedType | undefined): Promise<'open' | { reason: SyncRequiredReason }> {
    const controller = new AbortController();
    const stream: EventStream = { controller, types: new Set(this.types.keys()) };
    this.stream = stream;
    const generation = this.generation;
    const query = new URLSearchParams({ entityTypes: [...stream.types].join(',') });
    const response = await this.fetch(`${this.options.httpUrl}/api/v1/sync/events?${query}`, {
      headers: {
        accept: 'text/event-stream',
        authorization: `Bearer ${await this.token()}`,
        ...(from?.cursor ? { 'last-event-id': from.cursor } : {}),
      },
      signal: controller.signal,
    });
    if (!response.ok || !response.body) {
      if (this.stream === stream) this.stream = undefined;
      throw await httpError(response);
    }
    // The gateway's first words say which it is: `retry:` for a live stream, or `sync_required`.
    return new Promise((resolve) => {
      let settled = false;
      const settle = (outcome: 'open' | { reason: SyncRequiredReason }) => {
        if (!settled) resolve(outcome);
        settled = true;
      };
      void this.pump(response.body!, controller, generation, {
        onRetry: () => settle('open'),
        onEvent: (event) => {
          if (event.event === 'sync_required') {
            const { reason } = JSON.parse(event.data) as { reason: SyncRequiredReason };
            if (settled) this.lose('the change feed no longer holds a position of this connection');
            else this.stream = undefined;
            settle({ reason });
            return;
          }
          settle('open');
          if (event.event === 'delta') this.deliver(stream, JSON.parse(event.data) as DeltaPayload);
          // The gateway ends a stream for a reason (token expiry, too slow, shutting down): start over.
          else if (event.event === 'error' && generation === this.generation) {
            this.lose(`the event stream ended: ${event.data}`);
          }
        },
      }).finally(() => settle('open'));
    });
  }

  /** Passes a delta on unless its type already has it, and moves every type of the stream past it. */
  private deliver(stream: EventStream, delta: DeltaPayload): void {
    const position = delta.cursor ? positionOf(delta.cursor) : undefined;
    const type = this.types.get(delta.entityType);
    if (type && isAfter(position, type.position)) this.reply({ type: 'delta', payload: delta });
    if (!position || !delta.cursor) return;
    // The stream carries every change of its types in order: each of them is now at least here.
    for (const entityType of stream.types) {
      const streamed = this.types.get(entityType);
      if (streamed && isAfter(position, streamed.position))
        this.types.set(entityType, { cursor: delta.cursor, position });
    }
  }

  private async pump(
    body: ReadableStream<Uint8Array>,
    controller: AbortController,
    generation: number,
    callbacks: Pick<ParserCallbacks, 'onEvent' | 'onRetry'>,
  ): Promise<void> {
    const parser = createParser(callbacks);
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
    if (generation === this.generation && this.stream?.controller === controller) this.lose('the event stream ended');
  }

  private closeStream(): void {
    const stream = this.stream;
    this.stream = undefined;
    stream?.controller.abort();
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
    // The client resubscribes every type with its cursor after reconnecting.
    this.types.clear();
    this.closeStream();
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

type SyncRequiredReason = 'cursor_expired' | 'epoch_changed';

/** A subscribed type: its cursor, and that cursor read as a position in the change feed. */
interface StreamedType {
  readonly cursor: string | undefined;
  readonly position: FeedPosition | undefined;
}

interface FeedPosition {
  readonly epoch: string;
  readonly seq: number;
}

interface EventStream {
  readonly controller: AbortController;
  /** The types it was opened for: a type subscribed since is not carried yet. */
  readonly types: ReadonlySet<string>;
}

interface ExpiredType {
  readonly entityType: string;
  readonly reason: SyncRequiredReason;
  readonly cursor: string;
}

interface OpenedStream {
  /** Types whose position the feed no longer holds: each needs a snapshot. */
  readonly expired: readonly ExpiredType[];
}

function streamedType(cursor: string | undefined): StreamedType {
  return { cursor, position: cursor ? positionOf(cursor) : undefined };
}

/**
 * `<epoch>:<seq>`, read here rather than with the contracts' schema, which would bring its
 * validation library into the browser bundle.
 */
function positionOf(cursor: string): FeedPosition | undefined {
  const match = /^([a-z0-9]{1,32}):(\d{1,16})$/.exec(cursor);
  return match ? { epoch: match[1] as string, seq: Number(match[2]) } : undefined;
}

/**
 * Where one stream for all the types must start: the oldest position among them. Epochs are the
 * feed's creation time in base 36, so a cursor of a feed since recreated counts as oldest: the
 * gateway answers it with `sync_required` first. A type with no cursor starts at the live end,
 * as over a WebSocket, unless another type starts earlier.
 */
function oldestOf(types: ReadonlyMap<string, StreamedType>): StreamedType | undefined {
  let oldest: StreamedType | undefined;
  for (const type of types.values()) {
    if (!type.cursor) continue;
    // One that is not a cursor at all goes first too, for the gateway to refuse it.
    if (!type.position) return type;
    if (!oldest || isAfter(oldest.position, type.position)) oldest = type;
  }
  return oldest;
}

/** Whether `position` comes after `than`; an unknown position counts as new. */
function isAfter(position: FeedPosition | undefined, than: FeedPosition | undefined): boolean {
  if (!position || !than) return true;
  if (position.epoch !== than.epoch) return parseInt(position.epoch, 36) > parseInt(than.epoch, 36);
  return position.seq > than.seq;
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
