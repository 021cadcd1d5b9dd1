/**
 * A protocol-level WebSocket client for end-to-end tests: it records every frame the gateway
 * sends and lets a test wait for one (already received or still to come) by predicate.
 *
 *   const client = await TestClient.connect(system.gateways[0]!.url, token);
 *   const reply = await client.request('subscribe', { entityTypes: ['todo'] });
 *   await client.waitFor((f) => f.type === 'delta' && f.payload.entityId === 't1', { description: 'delta t1' });
 */
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import type { DeltaPayload, ErrorPayload, ServerFrame, ServerFrameType, WelcomePayload } from '@syncline/contracts';

export type Frame = ServerFrame;
export type FrameOf<K extends ServerFrameType> = Extract<ServerFrame, { type: K }>;

export interface CloseInfo {
  readonly code: number;
  readonly reason: string;
}

export interface WaitOptions {
  /** Default 10 s. */
  readonly timeoutMs?: number;
  /** Named in the timeout error. */
  readonly description?: string;
  /** Only frames at or after this index of `frames` count (see {@link TestClient.mark}). */
  readonly since?: number;
}

export interface ConnectOptions {
  /** Sent as `clientId` in every `mutate` payload that does not carry one. */
  readonly clientId?: string;
  /** How long to wait for `welcome` (default 10 s). */
  readonly timeoutMs?: number;
  /** Replaces the offered sub-protocols, to test a missing token or protocol. */
  readonly protocols?: readonly string[];
}

/** The gateway refused the connection with an `error` frame; carries the frame's fields. */
export class ErrorFrameRejection extends Error {
  override readonly name = 'ErrorFrameRejection';
  readonly type = 'error';
  readonly id: string | undefined;
  readonly payload: ErrorPayload;
  readonly timestamp: number;
  readonly code: string;

  constructor(
    frame: FrameOf<'error'>,
    /** How the server closed the socket afterwards, if it did within the connect timeout. */
    readonly close: CloseInfo | undefined,
  ) {
    const closed = close ? `; closed ${close.code}${close.reason ? ` "${close.reason}"` : ''}` : '';
    super(`server sent error ${frame.payload.code}: ${frame.payload.message}${closed}`);
    this.id = frame.id;
    this.payload = frame.payload;
    this.timestamp = frame.timestamp;
    this.code = frame.payload.code;
  }
}

interface Waiter {
  readonly predicate: (frame: Frame) => boolean;
  readonly resolve: (frame: Frame) => void;
  readonly reject: (error: Error) => void;
}

const DEFAULT_TIMEOUT_MS = 10_000;
let nextFrameNumber = 0;

export class TestClient {
  /** Every frame received, parsed, in order of arrival. */
  readonly frames: Frame[] = [];
  private readonly listeners = new Set<(frame: Frame) => void>();
  /** Text of received messages that were not JSON objects (a gateway bug if ever non-empty). */
  readonly unparsed: string[] = [];
  /** Resolves once the socket is closed, by either side. */
  readonly closed: Promise<CloseInfo>;
  private readonly waiters = new Set<Waiter>();
  private closeInfo: CloseInfo | undefined;
  private lastSocketError: Error | undefined;
  private welcomePayload: WelcomePayload | undefined;

  private constructor(
    private readonly socket: WebSocket,
    readonly clientId: string | undefined,
  ) {
    socket.on('message', (data, isBinary) => this.receive(data, isBinary));
    socket.on('error', (error) => {
      this.lastSocketError = error;
    });
    this.closed = new Promise<CloseInfo>((resolve) => {
      socket.once('close', (code, reason) => {
        const info = { code, reason: reason.toString('utf8') };
        this.closeInfo = info;
        const cause = this.lastSocketError ? ` (${this.lastSocketError.message})` : '';
        for (const waiter of [...this.waiters]) {
          waiter.reject(new Error(`connection closed ${code}${info.reason ? ` "${info.reason}"` : ''}${cause}`));
        }
        resolve(info);
      });
    });
  }

  /**
   * Opens a connection offering `['syncline.v1', 'bearer.<token>']` and resolves after the
   * `welcome` frame. Rejects with an {@link ErrorFrameRejection} when the server answers with an
   * `error` frame, or with the socket error / close when the handshake fails.
   */
  static async connect(url: string, token: string, options: ConnectOptions = {}): Promise<TestClient> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const protocols = options.protocols ? [...options.protocols] : ['syncline.v1', `bearer.${token}`];
    const socket = new WebSocket(url, protocols, { handshakeTimeout: timeoutMs, perMessageDeflate: false });
    const client = new TestClient(socket, options.clientId);
    const deadline = Date.now() + timeoutMs;
    let first: FrameOf<'welcome'> | FrameOf<'error'>;
    try {
      first = await client.waitFor(
        (frame): frame is FrameOf<'welcome'> | FrameOf<'error'> => frame.type === 'welcome' || frame.type === 'error',
        { timeoutMs, description: `welcome from ${url}` },
      );
    } catch (error) {
      client.terminate();
      throw error;
    }
    if (first.type === 'welcome') {
      client.welcomePayload = first.payload;
      return client;
    }
    const close = await client.closedWithin(Math.max(0, deadline - Date.now()));
    client.terminate();
    throw new ErrorFrameRejection(first, close);
  }

  /** The `welcome` payload of this connection. */
  get welcome(): WelcomePayload {
    if (!this.welcomePayload) throw new Error('no welcome received');
    return this.welcomePayload;
  }

  get isOpen(): boolean {
    return this.socket.readyState === WebSocket.OPEN;
  }

  /** The index the next frame will have: pass it as `since` to wait only for later frames. */
  mark(): number {
    return this.frames.length;
  }

  /** Sends `{type, id, payload, timestamp}` and returns the id (generated unless given). */
  send(type: string, payload: unknown, id: string = nextFrameId(type)): string {
    const body = type === 'mutate' && this.clientId !== undefined ? withClientId(payload, this.clientId) : payload;
    this.socket.send(JSON.stringify({ type, id, payload: body, timestamp: Date.now() }));
    return id;
  }

  /** Sends bytes as they are: a string as a text message, a Buffer as a binary one. */
  sendRaw(data: string | Buffer): void {
    this.socket.send(data, { binary: typeof data !== 'string' });
  }

  /** Sends a frame and resolves with the first frame whose `id` echoes it (reply or `error`). */
  async request(type: string, payload: unknown, options: Omit<WaitOptions, 'since'> = {}): Promise<Frame> {
    const since = this.mark();
    const id = this.send(type, payload);
    return this.waitFor((frame) => frame.id === id, {
      description: `the reply to ${type} ${id}`,
      ...options,
      since,
    });
  }

  /** The first frame answering request `id`: `id` echoed, or an error with `payload.ref === id`. */
  waitForReply(id: string, options: WaitOptions = {}): Promise<Frame> {
    return this.waitFor((frame) => frame.id === id || refOf(frame) === id, {
      description: `a reply to ${id}`,
      ...options,
    });
  }

  /**
   * The final ack of a mutation: the one after `accepted` that says what became of it. (A mutate
   * the gateway refuses gets an `error` instead, which `request` already returns.)
   */
  waitForOutcome(mutationId: string, options: WaitOptions = {}): Promise<FrameOf<'ack'>> {
    return this.waitFor(
      (frame): frame is FrameOf<'ack'> =>
        frame.type === 'ack' && frame.payload.mutationId === mutationId && frame.payload.status !== 'accepted',
      { description: `the outcome of mutation ${mutationId}`, ...options },
    );
  }

  /** The first frame of `type` (optionally also matching `predicate`). */
  waitForType<K extends ServerFrameType>(
    type: K,
    predicate: (frame: FrameOf<K>) => boolean = () => true,
    options: WaitOptions = {},
  ): Promise<FrameOf<K>> {
    return this.waitFor((frame): frame is FrameOf<K> => frame.type === type && predicate(frame as FrameOf<K>), {
      description: `a ${type} frame`,
      ...options,
    });
  }

  /**
   * Resolves with the first frame, already received (from `since`) or future, that matches.
   * Rejects after `timeoutMs` naming `description` and the last frames, or when the socket closes.
   */
  waitFor<F extends Frame>(predicate: (frame: Frame) => frame is F, options?: WaitOptions): Promise<F>;
  waitFor(predicate: (frame: Frame) => boolean, options?: WaitOptions): Promise<Frame>;
  waitFor(predicate: (frame: Frame) => boolean, options: WaitOptions = {}): Promise<Frame> {
    const { timeoutMs = DEFAULT_TIMEOUT_MS, description = 'a matching frame', since = 0 } = options;
    try {
      for (let i = since; i < this.frames.length; i++) {
        const frame = this.frames[i] as Frame;
        if (predicate(frame)) return Promise.resolve(frame);
      }
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    if (this.closeInfo) {
      const { code, reason } = this.closeInfo;
      return Promise.reject(new Error(`connection closed ${code} "${reason}" before ${description}; ${this.recent()}`));
    }
    return new Promise<Frame>((resolve, reject) => {
      const waiter: Waiter = {
        predicate,
        resolve: (frame) => {
          settle();
          resolve(frame);
        },
        reject: (error) => {
          settle();
          reject(new Error(`${error.message} while waiting for ${description}; ${this.recent()}`));
        },
      };
      const timer = setTimeout(() => {
        settle();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${description}; ${this.recent()}`));
      }, timeoutMs);
      const settle = () => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      this.waiters.add(waiter);
    });
  }

  /** Calls `listener` with every frame received from now on; returns what stops it. */
  onFrame(listener: (frame: Frame) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Frames of one type received so far. */
  framesOf<K extends ServerFrameType>(type: K): FrameOf<K>[] {
    return this.frames.filter((frame): frame is FrameOf<K> => frame.type === type);
  }

  /** Payloads of the `delta` frames received so far, optionally of one entity type. */
  deltas(entityType?: string): DeltaPayload[] {
    return this.framesOf('delta')
      .map((frame) => frame.payload)
      .filter((delta) => entityType === undefined || delta.entityType === entityType);
  }

  /** Closes the connection (normal closure by default) and resolves once it is closed. */
  async close(code = 1000, reason = ''): Promise<CloseInfo> {
    if (!this.closeInfo && this.socket.readyState !== WebSocket.CLOSED) this.socket.close(code, reason);
    return this.closed;
  }

  /** Drops the TCP connection without a close handshake, like a client that vanished. */
  terminate(): void {
    this.socket.terminate();
  }

  private receive(data: WebSocket.RawData, isBinary: boolean): void {
    const text = Array.isArray(data)
      ? Buffer.concat(data).toString('utf8')
      : Buffer.isBuffer(data)
        ? data.toString('utf8')
        : Buffer.from(data).toString('utf8');
    let frame: unknown;
    try {
      frame = JSON.parse(text);
    } catch {
      frame = undefined;
    }
    if (isBinary || frame === null || typeof frame !== 'object' || Array.isArray(frame)) {
      this.unparsed.push(text);
      return;
    }
    this.frames.push(frame as Frame);
    for (const listener of this.listeners) listener(frame as Frame);
    for (const waiter of [...this.waiters]) {
      let matched: boolean;
      try {
        matched = waiter.predicate(frame as Frame);
      } catch (error) {
        waiter.reject(error instanceof Error ? error : new Error(String(error)));
        continue;
      }
      if (matched) waiter.resolve(frame as Frame);
    }
  }

  private async closedWithin(ms: number): Promise<CloseInfo | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), ms);
    });
    try {
      return await Promise.race([this.closed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The last 10 frames, as `type` plus the detail that tells them apart. */
  private recent(): string {
    const last = this.frames.slice(-10).map(describeFrame);
    return `last frames (${this.frames.length} in all): [${last.join(', ')}]`;
  }
}

function describeFrame(frame: Frame): string {
  switch (frame.type) {
    case 'error':
      return `error(${frame.payload.code})`;
    case 'ack':
      return `ack(${frame.payload.status} ${frame.payload.mutationId})`;
    case 'delta':
      return `delta(${frame.payload.entityType}/${frame.payload.entityId} v${frame.payload.version})`;
    default:
      return String(frame.type);
  }
}

function refOf(frame: Frame): unknown {
  const payload: unknown = frame.payload;
  return payload !== null && typeof payload === 'object' ? (payload as { ref?: unknown }).ref : undefined;
}

function withClientId(payload: unknown, clientId: string): unknown {
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload) || 'clientId' in payload)
    return payload;
  return { ...payload, clientId };
}

function nextFrameId(type: string): string {
  nextFrameNumber += 1;
  return `${type}-${nextFrameNumber}-${randomUUID().slice(0, 8)}`;
}

const hlcCounters = new Map<string, number>();

/** An HLC timestamp for `node`: now, with a counter that increases per node. */
export function hlcNow(node: string): string {
  const counter = ((hlcCounters.get(node) ?? -1) + 1) % 100_000;
  hlcCounters.set(node, counter);
  return `${String(Date.now()).padStart(15, '0')}:${String(counter).padStart(5, '0')}:${node}`;
}

/** A fresh mutation id, `m-<uuid>`. */
export function mutationId(): string {
  return `m-${randomUUID()}`;
}
