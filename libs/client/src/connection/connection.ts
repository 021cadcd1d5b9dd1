import {
  CloseCode,
  ErrorCode,
  WS_SUBPROTOCOL,
  WS_TOKEN_PROTOCOL_PREFIX,
  type ServerFrame,
  type WelcomePayload,
} from '@syncline/contracts';
import { TypedEmitter } from '../events.js';
import { backoffDelay } from './backoff.js';
import { WS_OPEN, type WebSocketFactory, type WebSocketLike } from './transport.js';

export type ConnectionState = 'disconnected' | 'connecting' | 'connected' | 'reconnecting' | 'error';

/** Tells the connection whether the device has a network; see {@link browserOnlineSignal}. */
export interface OnlineSignal {
  isOnline(): boolean;
  /** Calls `listener` on every change; returns the function that stops it. */
  subscribe(listener: (online: boolean) => void): () => void;
}

export interface ConnectionOptions {
  /** The gateway's WebSocket endpoint, e.g. `wss://sync.example.com/ws`. */
  readonly url: string;
  /** A token, or a function asked for a fresh one before every connection attempt. */
  readonly token: string | (() => string | Promise<string>);
  readonly webSocketFactory: WebSocketFactory;
  /** Reconnect after connection failures and unintentional closes (default true). */
  readonly autoReconnect?: boolean;
  /** Failed reconnection attempts before giving up with `reconnect:failed` (default Infinity). */
  readonly maxRetries?: number;
  /** Smallest reconnection delay in ms (default 1000). */
  readonly retryDelay?: number;
  /** Largest reconnection delay in ms (default 30000). */
  readonly maxRetryDelay?: number;
  /** Time allowed from the start of an attempt until `welcome`, in ms (default 10000). */
  readonly connectionTimeout?: number;
  /** Interval of the client's `ping` frames while connected, in ms; 0 turns them off (default 30000). */
  readonly heartbeatInterval?: number;
  /** Time a `ping` may wait for its `pong` before the connection counts as lost, in ms (default 5000). */
  readonly heartbeatTimeout?: number;
  /** Source of the backoff jitter (tests). */
  readonly random?: () => number;
  readonly onlineSignal?: OnlineSignal;
  /** Offer per-message compression where the WebSocket implementation lets the caller choose. */
  readonly compression?: boolean;
}

export interface ConnectionErrorEvent {
  code: string;
  message: string;
  cause?: unknown;
}

export interface ConnectionEvents {
  /** Every state change, from the one place that changes the state. */
  state: { state: ConnectionState; previous: ConnectionState; reason?: string };
  /** A `welcome` arrived; `reconnected` is false for the first one since construction or `disconnect()`. */
  connected: { welcome: WelcomePayload; reconnected: boolean };
  /** An established connection ended. */
  disconnected: { code: number; reason: string; willReconnect: boolean };
  welcome: WelcomePayload;
  /** Every frame received once the connection is established, `welcome` included. */
  frame: ServerFrame;
  error: ConnectionErrorEvent;
  'reconnect:scheduled': { attempt: number; delay: number };
  'reconnect:failed': { attempts: number };
  pong: { rttMs: number };
}

/** What `send()` takes: the envelope without its timestamp, which is set when it is sent. */
export interface OutgoingFrame {
  readonly type: string;
  readonly id?: string | undefined;
  readonly payload: unknown;
}

/** The rejection of `connect()` and `ping()`; `code` is the one of the matching `error` event. */
export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';

  constructor(
    readonly code: string,
    message: string,
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
  }
}

/** Codes of the `error` events and rejections that the connection itself produces. */
export const ConnectionErrorCode = {
  CONNECTION_TIMEOUT: 'CONNECTION_TIMEOUT',
  CONNECTION_CLOSED: 'CONNECTION_CLOSED',
  CONNECTION_FAILED: 'CONNECTION_FAILED',
  TOKEN_UNAVAILABLE: 'TOKEN_UNAVAILABLE',
  HEARTBEAT_TIMEOUT: 'HEARTBEAT_TIMEOUT',
  PROTOCOL_ERROR: 'PROTOCOL_ERROR',
  OFFLINE: 'OFFLINE',
  NOT_CONNECTED: 'NOT_CONNECTED',
  DISCONNECTED: 'DISCONNECTED',
  DISPOSED: 'DISPOSED',
} as const;

/**
 * The only transitions `setState` accepts. "reconnecting" covers both the wait between attempts
 * and the attempts themselves; "connecting" is the attempt that `connect()` starts from rest.
 */
const TRANSITIONS: Readonly<Record<ConnectionState, readonly ConnectionState[]>> = {
  disconnected: ['connecting', 'reconnecting'],
  connecting: ['connected', 'reconnecting', 'error', 'disconnected'],
  connected: ['reconnecting', 'error', 'disconnected'],
  reconnecting: ['connected', 'error', 'disconnected'],
  error: ['connecting', 'reconnecting', 'disconnected'],
};

/** Failures after which the same attempt cannot succeed (protocol §12): no retry. */
const FINAL_CLOSE_CODES: ReadonlySet<number> = new Set([CloseCode.AUTH_INVALID, CloseCode.UNSUPPORTED_PROTOCOL]);
const FINAL_ERROR_CODES: ReadonlySet<string> = new Set([ErrorCode.AUTH_INVALID, ErrorCode.UNSUPPORTED_PROTOCOL]);

/** Browsers only let a page close with 1000 or 3000-4999, so every close of ours is 1000. */
const NORMAL_CLOSURE = 1000;
/** What `disconnected` reports for losses the client detects itself: no close frame came. */
const ABNORMAL_CLOSURE = 1006;

type Timer = ReturnType<typeof setTimeout>;

interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: Error): void;
}

/** One connection attempt and, once welcomed, the connection it became. */
interface Transport {
  readonly id: number;
  socket: WebSocketLike | undefined;
  welcomed: boolean;
  readonly welcome: Deferred<WelcomePayload>;
}

interface PendingPing {
  readonly sentAt: number;
  readonly timer: Timer;
  resolve(rttMs: number): void;
  reject(error: Error): void;
}

/** Why a transport ends, and how to go on. */
interface Failure {
  readonly code: string;
  readonly message: string;
  /** False when retrying cannot help (bad token, unsupported protocol, unusable URL). */
  readonly retryable: boolean;
  /** Whether to emit it as an `error` event (closes and going offline are not errors). */
  readonly report: boolean;
  /** What `disconnected` says when the transport was connected. */
  readonly closeCode: number;
  readonly closeReason: string;
  readonly cause?: unknown;
}

type Plan = 'retry' | 'wait-online' | 'give-up' | 'fail' | 'stop';

/**
 * What the client needs of a connection to the gateway, whatever carries it: a WebSocket
 * ({@link Connection}) or Server-Sent Events plus HTTP (`SseConnection`).
 */
export interface SyncConnection {
  readonly state: ConnectionState;
  readonly isConnected: boolean;
  connect(): Promise<WelcomePayload>;
  /** Sends a client frame; returns its id, or undefined when not connected. */
  send(frame: OutgoingFrame): string | undefined;
  /** Closes for good and forgets every listener. */
  dispose(): void;
  on<K extends keyof ConnectionEvents>(event: K, listener: (payload: ConnectionEvents[K]) => void): () => void;
}

/**
 * One WebSocket connection to a gateway, kept alive: handshake with a token sub-protocol,
 * `welcome`, heartbeat pings, reconnection with backoff, and pausing while the device is offline.
 *
 * Everything that can happen later (a socket event, a timer, a token that resolves) belongs to a
 * transport, numbered by `transportId`. Replacing or releasing the transport bumps the number,
 * so a continuation that finds another number knows the world moved on and does nothing: a late
 * close from the previous socket cannot tear down the new one.
 */
export class Connection extends TypedEmitter<ConnectionEvents> implements SyncConnection {
  private currentState: ConnectionState = 'disconnected';
  private current: Transport | undefined;
  private transportId = 0;
  private lastWelcome: WelcomePayload | undefined;
  private attempts = 0;
  private welcomedBefore = false;
  private connectTimer: Timer | undefined;
  private reconnectTimer: Timer | undefined;
  private heartbeatTimer: Timer | undefined;
  private readonly pings = new Map<string, PendingPing>();
  private frameCounter = 0;
  private stopWatchingOnline: (() => void) | undefined;
  private disposed = false;

  private readonly autoReconnect: boolean;
  private readonly maxRetries: number;
  private readonly retryDelay: number;
  private readonly maxRetryDelay: number;
  private readonly connectionTimeout: number;
  private readonly heartbeatInterval: number;
  private readonly heartbeatTimeout: number;
  private readonly random: () => number;

  constructor(private readonly options: ConnectionOptions) {
    super();
    this.autoReconnect = options.autoReconnect ?? true;
    this.maxRetries = options.maxRetries ?? Infinity;
    this.retryDelay = options.retryDelay ?? 1_000;
    this.maxRetryDelay = options.maxRetryDelay ?? 30_000;
    this.connectionTimeout = options.connectionTimeout ?? 10_000;
    this.heartbeatInterval = options.heartbeatInterval ?? 30_000;
    this.heartbeatTimeout = options.heartbeatTimeout ?? 5_000;
    this.random = options.random ?? Math.random;
  }

  get state(): ConnectionState {
    return this.currentState;
  }

  get isConnected(): boolean {
    return this.currentState === 'connected';
  }

  /** The last `welcome` received (kept after the connection ends). */
  get welcome(): WelcomePayload | undefined {
    return this.lastWelcome;
  }

  /** Reconnection attempts made since the last `welcome` (or since going back online). */
  get reconnectAttempts(): number {
    return this.attempts;
  }

  // ---------------------------------------------------------------------------------------------
  // Public operations

  /**
   * Connects, resolving with the `welcome`. While an attempt is under way it returns that
   * attempt's promise, and once connected the current `welcome`. A failed attempt rejects with a
   * {@link ConnectionError}; when the failure is retryable and `autoReconnect` is on, reconnection
   * goes on in the background (watch `connected`).
   */
  connect(): Promise<WelcomePayload> {
    if (this.disposed) return rejected(ConnectionErrorCode.DISPOSED, 'the connection was disposed');
    this.watchOnline();
    if (this.current) return this.current.welcome.promise;
    if (!this.isOnline()) return this.waitForOnline();
    if (this.currentState !== 'reconnecting') this.attempts = 0;
    return this.startAttempt();
  }

  /** Closes the connection on purpose: no reconnection, no timer left behind. */
  disconnect(): void {
    const transport = this.current;
    this.release();
    this.attempts = 0;
    this.welcomedBefore = false;
    if (transport) {
      closeQuietly(transport.socket, 'client disconnect');
      transport.welcome.reject(new ConnectionError(ConnectionErrorCode.DISCONNECTED, 'disconnect() was called'));
    }
    const id = this.transportId;
    this.setState('disconnected', 'disconnect() called');
    if (id !== this.transportId || !transport?.welcomed) return;
    this.emit('disconnected', { code: NORMAL_CLOSURE, reason: 'client disconnect', willReconnect: false });
  }

  /** `disconnect()`, and forget the online signal and every listener: the object is done. */
  dispose(): void {
    this.disconnect();
    this.disposed = true;
    this.stopWatchingOnline?.();
    this.stopWatchingOnline = undefined;
    this.removeAllListeners();
  }

  /**
   * Sends a frame with `timestamp` set now and `id` generated when missing. Returns the id, or
   * undefined when there is no established connection (nothing is queued here).
   */
  send(frame: OutgoingFrame): string | undefined {
    const socket = this.current?.welcomed ? this.current.socket : undefined;
    if (!socket || socket.readyState !== WS_OPEN) return undefined;
    const id = frame.id ?? this.nextFrameId();
    socket.send(JSON.stringify({ type: frame.type, id, payload: frame.payload, timestamp: Date.now() }));
    return id;
  }

  /**
   * Sends a `ping` and resolves with the round trip in ms (also emitted as `pong`). Without a
   * `pong` within `heartbeatTimeout` the connection counts as lost and is reconnected: a socket
   * that cannot answer a ping cannot carry changes either.
   */
  ping(): Promise<number> {
    const transport = this.current;
    const id = transport?.welcomed ? this.send({ type: 'ping', payload: {} }) : undefined;
    if (!transport || id === undefined) return rejected(ConnectionErrorCode.NOT_CONNECTED, 'ping() needs a connection');
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => this.onPingTimeout(transport, id), this.heartbeatTimeout);
      this.pings.set(id, { sentAt: Date.now(), timer, resolve, reject });
    });
  }

  // ---------------------------------------------------------------------------------------------
  // The state machine

  /** The one place the state changes. */
  private setState(next: ConnectionState, reason?: string): void {
    const previous = this.currentState;
    if (next === previous) return;
    if (!TRANSITIONS[previous].includes(next)) throw new Error(`connection: no transition ${previous} → ${next}`);
    this.currentState = next;
    this.emit('state', reason === undefined ? { state: next, previous } : { state: next, previous, reason });
  }

  /** A new attempt becomes the current transport; a resting connection goes to "connecting". */
  private startAttempt(): Promise<WelcomePayload> {
    this.clearTimer('reconnectTimer');
    const transport: Transport = { id: ++this.transportId, socket: undefined, welcomed: false, welcome: deferred() };
    this.current = transport;
    // The timeout also covers getting the token: a token provider that hangs must not hang connect().
    this.connectTimer = setTimeout(() => this.onConnectTimeout(transport), this.connectionTimeout);
    if (this.currentState !== 'reconnecting') this.setState('connecting');
    if (this.isCurrent(transport)) this.openSocket(transport);
    return transport.welcome.promise;
  }

  private openSocket(transport: Transport): void {
    const { token } = this.options;
    // A string token opens the socket at once; only a provider needs the asynchronous path.
    if (typeof token === 'string') {
      this.openSocketWith(transport, token);
      return;
    }
    void resolveToken(token).then(
      (value) => {
        if (this.isCurrent(transport)) this.openSocketWith(transport, value);
      },
      (cause: unknown) => {
        if (!this.isCurrent(transport)) return;
        this.drop(transport, {
          code: ConnectionErrorCode.TOKEN_UNAVAILABLE,
          message: `the token provider failed: ${describe(cause)}`,
          retryable: true,
          report: true,
          closeCode: ABNORMAL_CLOSURE,
          closeReason: 'no token',
          cause,
        });
      },
    );
  }

  private openSocketWith(transport: Transport, token: string): void {
    let socket: WebSocketLike;
    try {
      socket = this.options.webSocketFactory(this.options.url, [WS_SUBPROTOCOL, WS_TOKEN_PROTOCOL_PREFIX + token], {
        compression: this.options.compression ?? false,
      });
    } catch (cause) {
      // A constructor that throws (bad URL, token not usable as a sub-protocol) throws again next time.
      this.drop(transport, {
        code: ConnectionErrorCode.CONNECTION_FAILED,
        message: `the WebSocket could not be created: ${describe(cause)}`,
        retryable: false,
        report: true,
        closeCode: ABNORMAL_CLOSURE,
        closeReason: 'no socket',
        cause,
      });
      return;
    }
    transport.socket = socket;
    socket.onopen = null;
    socket.onmessage = (event) => {
      if (this.isCurrent(transport)) this.onMessage(transport, event.data);
    };
    socket.onclose = (event) => {
      if (this.isCurrent(transport)) this.onSocketClose(transport, event.code, event.reason);
    };
    // Kept (not null) even though a close always follows: `ws` throws on an error nobody listens to.
    socket.onerror = () => undefined;
  }

  private onMessage(transport: Transport, data: unknown): void {
    const frame = parseFrame(data);
    if (!frame) {
      this.reportError(
        ConnectionErrorCode.PROTOCOL_ERROR,
        'the server sent a frame that is not a JSON object with a type',
      );
      return;
    }
    if (!transport.welcomed) {
      this.onHandshakeFrame(transport, frame);
      return;
    }
    if (frame.type === 'pong') this.onPong(frame.id);
    if (frame.type === 'auth_expiring') this.renewToken(transport);
    if (this.isCurrent(transport)) this.emit('frame', frame);
  }

  /** Before `welcome` the server sends nothing but `welcome` or the `error` of a failed handshake. */
  private onHandshakeFrame(transport: Transport, frame: ServerFrame): void {
    if (frame.type === 'welcome') {
      this.onWelcome(transport, frame);
      return;
    }
    if (frame.type !== 'error') return; // not expected; the connection timeout deals with a silent server
    const { code, message } = readError(frame.payload);
    this.drop(transport, {
      code,
      message,
      retryable: !FINAL_ERROR_CODES.has(code),
      report: true,
      closeCode: ABNORMAL_CLOSURE,
      closeReason: message,
    });
  }

  /**
   * The token runs out soon: send a fresh one from the provider, so the connection carries on.
   * A fixed token cannot be renewed; the gateway then closes with 4402 at expiry, and the
   * reconnection fails until the application gives the client a provider.
   */
  private renewToken(transport: Transport): void {
    const provider = this.options.token;
    if (typeof provider !== 'function') return;
    Promise.resolve()
      .then(provider)
      .then(
        (token) => {
          if (this.isCurrent(transport)) this.send({ type: 'auth', payload: { token } });
        },
        (error: unknown) =>
          this.reportError(
            ConnectionErrorCode.TOKEN_UNAVAILABLE,
            'the token provider failed to renew the token',
            error,
          ),
      );
  }

  private onWelcome(transport: Transport, frame: Extract<ServerFrame, { type: 'welcome' }>): void {
    const welcome = frame.payload;
    transport.welcomed = true;
    this.clearTimer('connectTimer');
    this.attempts = 0;
    this.lastWelcome = welcome;
    const reconnected = this.welcomedBefore;
    this.welcomedBefore = true;
    transport.welcome.resolve(welcome);
    this.scheduleHeartbeat(transport);
    this.setState('connected');
    // Each listener may disconnect or reconnect; stop as soon as this transport is no longer current.
    if (this.isCurrent(transport)) this.emit('welcome', welcome);
    if (this.isCurrent(transport)) this.emit('connected', { welcome, reconnected });
    if (this.isCurrent(transport)) this.emit('frame', frame);
  }

  private onSocketClose(transport: Transport, code: number, reason: string): void {
    if (transport.welcomed) {
      this.drop(transport, {
        code: ConnectionErrorCode.CONNECTION_CLOSED,
        message: `the connection closed (${code}${reason ? `: ${reason}` : ''})`,
        retryable: !FINAL_CLOSE_CODES.has(code),
        report: false,
        closeCode: code,
        closeReason: reason,
      });
      return;
    }
    this.drop(transport, closeBeforeWelcome(code, reason));
  }

  private onConnectTimeout(transport: Transport): void {
    this.connectTimer = undefined;
    if (!this.isCurrent(transport)) return;
    this.drop(transport, {
      code: ConnectionErrorCode.CONNECTION_TIMEOUT,
      message: `no welcome within ${this.connectionTimeout} ms`,
      retryable: true,
      report: true,
      closeCode: ABNORMAL_CLOSURE,
      closeReason: 'connection timeout',
    });
  }

  /**
   * Ends a transport that failed or was lost, then goes on as the failure and the options say:
   * retry with backoff, wait for the network, or stop in "error" / "disconnected".
   */
  private drop(transport: Transport, failure: Failure): void {
    const wasConnected = transport.welcomed;
    this.release();
    closeQuietly(transport.socket, failure.closeReason);
    transport.welcome.reject(new ConnectionError(failure.code, failure.message, failure.cause));
    const plan = this.planAfter(failure, wasConnected);
    const id = this.transportId;
    this.setState(stateOf(plan), failure.message);
    if (id !== this.transportId) return;
    if (failure.report) this.reportError(failure.code, failure.message, failure.cause);
    if (id !== this.transportId) return;
    if (wasConnected) {
      const willReconnect = plan === 'retry' || plan === 'wait-online';
      this.emit('disconnected', { code: failure.closeCode, reason: failure.closeReason, willReconnect });
    }
    if (id !== this.transportId) return;
    // An expired token is no sign of trouble: reconnect with a fresh one at once.
    if (plan === 'retry') this.scheduleReconnect(failure.closeCode === CloseCode.AUTH_EXPIRED ? 0 : undefined);
    else if (plan === 'give-up') this.emit('reconnect:failed', { attempts: this.attempts });
  }

  private planAfter(failure: Failure, wasConnected: boolean): Plan {
    if (!failure.retryable) return 'fail';
    if (!this.autoReconnect) return wasConnected ? 'stop' : 'fail';
    if (failure.code === ConnectionErrorCode.OFFLINE || !this.isOnline()) return 'wait-online';
    return this.attempts >= this.maxRetries ? 'give-up' : 'retry';
  }

  private scheduleReconnect(delayMs?: number): void {
    this.attempts += 1;
    const attempt = this.attempts;
    const delay =
      delayMs ?? backoffDelay(attempt, { minDelayMs: this.retryDelay, maxDelayMs: this.maxRetryDelay }, this.random);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      // Without an `offline` event (or without a signal at all) this is where being offline shows.
      if (this.isOnline()) void this.startAttempt();
    }, delay);
    this.emit('reconnect:scheduled', { attempt, delay });
  }

  /**
   * Invalidates the current transport (bumping the id, so its pending callbacks do nothing) and
   * clears every timer and pending ping that belonged to it.
   */
  private release(): void {
    this.current = undefined;
    this.transportId += 1;
    this.clearTimer('connectTimer');
    this.clearTimer('reconnectTimer');
    this.clearTimer('heartbeatTimer');
    for (const [id, ping] of this.pings) {
      clearTimeout(ping.timer);
      this.pings.delete(id);
      ping.reject(new ConnectionError(ConnectionErrorCode.NOT_CONNECTED, 'the connection ended before the pong'));
    }
  }

  private reportError(code: string, message: string, cause?: unknown): void {
    this.emit('error', cause === undefined ? { code, message } : { code, message, cause });
  }

  private isCurrent(transport: Transport): boolean {
    return this.current === transport && transport.id === this.transportId;
  }

  private clearTimer(name: 'connectTimer' | 'reconnectTimer' | 'heartbeatTimer'): void {
    const timer = this[name];
    if (timer !== undefined) clearTimeout(timer);
    this[name] = undefined;
  }

  // ---------------------------------------------------------------------------------------------
  // Heartbeat

  private scheduleHeartbeat(transport: Transport): void {
    if (!(this.heartbeatInterval > 0) || !Number.isFinite(this.heartbeatInterval)) return;
    this.heartbeatTimer = setTimeout(() => {
      this.heartbeatTimer = undefined;
      if (!this.isCurrent(transport)) return;
      this.scheduleHeartbeat(transport);
      // A missing pong is handled in ping() itself; the rejection carries nothing more to do.
      void this.ping().catch(() => undefined);
    }, this.heartbeatInterval);
  }

  private onPong(id: string | undefined): void {
    const ping = id === undefined ? undefined : this.pings.get(id);
    if (!ping || id === undefined) return;
    clearTimeout(ping.timer);
    this.pings.delete(id);
    const rttMs = Math.max(0, Date.now() - ping.sentAt);
    ping.resolve(rttMs);
    this.emit('pong', { rttMs });
  }

  private onPingTimeout(transport: Transport, id: string): void {
    const ping = this.pings.get(id);
    if (!ping) return;
    this.pings.delete(id);
    const message = `no pong within ${this.heartbeatTimeout} ms`;
    ping.reject(new ConnectionError(ConnectionErrorCode.HEARTBEAT_TIMEOUT, message));
    if (!this.isCurrent(transport)) return;
    this.drop(transport, {
      code: ConnectionErrorCode.HEARTBEAT_TIMEOUT,
      message,
      retryable: true,
      report: true,
      closeCode: ABNORMAL_CLOSURE,
      closeReason: 'heartbeat timeout',
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Online / offline

  private isOnline(): boolean {
    return this.options.onlineSignal?.isOnline() ?? true;
  }

  /** Subscribes once, on the first `connect()`: a connection never used holds no listener. */
  private watchOnline(): void {
    const signal = this.options.onlineSignal;
    if (!signal || this.stopWatchingOnline) return;
    this.stopWatchingOnline = signal.subscribe((online) => (online ? this.onOnline() : this.onOffline()));
  }

  /** `connect()` while offline: wait in "reconnecting" for the network, and say so. */
  private waitForOnline(): Promise<WelcomePayload> {
    this.clearTimer('reconnectTimer');
    this.setState('reconnecting', 'offline');
    return rejected(ConnectionErrorCode.OFFLINE, 'the device is offline: connecting when it is back online');
  }

  private onOffline(): void {
    const transport = this.current;
    if (transport) {
      this.drop(transport, {
        code: ConnectionErrorCode.OFFLINE,
        message: 'the device went offline',
        retryable: true,
        report: false,
        closeCode: ABNORMAL_CLOSURE,
        closeReason: 'offline',
      });
    } else if (this.currentState === 'reconnecting') {
      // Attempts while offline would only fail and lengthen the backoff; `online` restarts them.
      this.clearTimer('reconnectTimer');
    }
  }

  private onOnline(): void {
    if (this.currentState !== 'reconnecting' || this.current) return;
    // The network, not the server, was the problem: start again from the shortest delay, now.
    this.attempts = 0;
    void this.startAttempt();
  }

  private nextFrameId(): string {
    this.frameCounter += 1;
    return `c${this.frameCounter.toString(36)}`;
  }
}

/**
 * The browser's `navigator.onLine` and its `online` / `offline` events (in a page or a worker);
 * undefined where there is no such thing, as in Node.
 */
export function browserOnlineSignal(): OnlineSignal | undefined {
  const scope = globalThis as {
    navigator?: { onLine?: unknown };
    addEventListener?: (type: string, listener: () => void) => void;
    removeEventListener?: (type: string, listener: () => void) => void;
  };
  const { navigator: nav, addEventListener, removeEventListener } = scope;
  if (typeof nav?.onLine !== 'boolean' || !addEventListener || !removeEventListener) return undefined;
  return {
    isOnline: () => nav.onLine !== false,
    subscribe(listener) {
      const online = (): void => listener(true);
      const offline = (): void => listener(false);
      addEventListener.call(scope, 'online', online);
      addEventListener.call(scope, 'offline', offline);
      return () => {
        removeEventListener.call(scope, 'online', online);
        removeEventListener.call(scope, 'offline', offline);
      };
    },
  };
}

function stateOf(plan: Plan): ConnectionState {
  switch (plan) {
    case 'retry':
    case 'wait-online':
      return 'reconnecting';
    case 'stop':
      return 'disconnected';
    case 'give-up':
    case 'fail':
      return 'error';
  }
}

/** A close before `welcome`: 4401 and 4400 are final (protocol §12); anything else may pass next time. */
function closeBeforeWelcome(code: number, reason: string): Failure {
  const detail = `${code}${reason ? `: ${reason}` : ''}`;
  const base = { report: true, closeCode: code, closeReason: reason };
  if (code === CloseCode.AUTH_INVALID) {
    return { ...base, code: ErrorCode.AUTH_INVALID, message: `authentication failed (${detail})`, retryable: false };
  }
  if (code === CloseCode.UNSUPPORTED_PROTOCOL) {
    const message = `the gateway does not support ${WS_SUBPROTOCOL} (${detail})`;
    return { ...base, code: ErrorCode.UNSUPPORTED_PROTOCOL, message, retryable: false };
  }
  const message = `the socket closed before welcome (${detail})`;
  return { ...base, code: ConnectionErrorCode.CONNECTION_CLOSED, message, retryable: true };
}

function parseFrame(data: unknown): ServerFrame | undefined {
  if (typeof data !== 'string') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  return typeof (value as { type?: unknown }).type === 'string' ? (value as ServerFrame) : undefined;
}

/** The code and message of an `error` payload, defensively: it decides whether to retry. */
function readError(payload: unknown): { code: string; message: string } {
  const { code, message } = (typeof payload === 'object' && payload !== null ? payload : {}) as {
    code?: unknown;
    message?: unknown;
  };
  return {
    code: typeof code === 'string' ? code : ErrorCode.INTERNAL,
    message: typeof message === 'string' ? message : 'the gateway refused the connection',
  };
}

function closeQuietly(socket: WebSocketLike | undefined, reason: string): void {
  try {
    // A close reason is limited to 123 bytes; ours are short, a server's is cut to be safe.
    socket?.close(NORMAL_CLOSURE, reason.slice(0, 60));
  } catch {
    // Closing an already closed socket is not a failure worth reporting.
  }
}

async function resolveToken(provider: () => string | Promise<string>): Promise<string> {
  const token = await provider();
  if (typeof token !== 'string' || token === '') throw new Error('the token provider returned no token');
  return token;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Attempts started by reconnection have no caller awaiting them: their failure is reported
  // through events, and must not surface as an unhandled rejection.
  void promise.catch(() => undefined);
  return { promise, resolve, reject };
}

function rejected<T>(code: string, message: string): Promise<T> {
  return Promise.reject(new ConnectionError(code, message));
}

function describe(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}
