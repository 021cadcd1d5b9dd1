import type { ConflictStrategy } from '@syncline/contracts';
import type { WebSocketFactory } from './connection/transport.js';
import type { OnlineSignal } from './connection/connection.js';
import type { KeyValueStorage } from './storage/storage.js';

/** Options of {@link DifferentialSyncClient}. */
export interface DifferentialSyncClientOptions {
  /** Names this client in vector clocks and change logs; keep it stable per device or tab. */
  readonly clientId: string;
  /** The gateway's WebSocket endpoint, e.g. `wss://sync.example.com/ws`. */
  readonly websocketUrl: string;
  /** Entity types `subscribe()` subscribes to when called without arguments. */
  readonly entityTypes: readonly string[];
  /** A token, or a function that returns a fresh one before each (re)connection. */
  readonly token?: string;
  readonly tokenProvider?: () => string | Promise<string>;
  /** Reconnect after unintentional disconnects (default true). */
  readonly autoReconnect?: boolean;
  /** Reconnection attempts before giving up with `reconnect:failed` (default unlimited). */
  readonly maxRetries?: number;
  /** First reconnection delay in ms; later ones grow exponentially with full jitter up to 30 s (default 1000). */
  readonly retryDelay?: number;
  /** Time to open the socket and receive `welcome`, in ms (default 10000). */
  readonly connectionTimeout?: number;
  /** Measure latency and sync durations for `getSyncStatus()` and health (default true). */
  readonly qualityMonitoring?: boolean;
  /**
   * Offer per-message compression (permessage-deflate) where the WebSocket implementation lets
   * the caller choose, as `@syncline/client/node` does (default false). Browsers always offer it.
   * The gateway accepts it only when configured to (`WS_COMPRESSION_MIN_BYTES`).
   */
  readonly enableCompression?: boolean;
  /**
   * The strategy the application expects the server to apply to concurrent edits. The server's
   * policy decides; when an ack shows another strategy deciding, the client emits an `error`
   * event with code `CONFLICT_STRATEGY_MISMATCH`, once per entity type and strategy.
   */
  readonly conflictResolution?: ConflictStrategy;
  /**
   * `websocket` (default), or `sse`: Server-Sent Events for changes and HTTP for the rest, for
   * networks that do not let WebSockets through. Same API and guarantees; one HTTP stream per
   * subscribed entity type.
   */
  readonly transport?: 'websocket' | 'sse';
  /** The gateway's HTTP base for the `sse` transport (default: `websocketUrl` with http(s) and no `/ws`). */
  readonly httpUrl?: string;
  /** `fetch` for the `sse` transport (default: the global one). */
  readonly fetch?: typeof fetch;
  /** Where the offline queue, cursors and confirmed state survive reloads (default: in memory). */
  readonly storage?: KeyValueStorage;
  /** WebSocket implementation (default: the global `WebSocket`; Node: `@syncline/client/node`). */
  readonly webSocketFactory?: WebSocketFactory;
  /** Online/offline signal (default: the browser's `navigator.onLine` and its events). */
  readonly onlineSignal?: OnlineSignal;
  readonly heartbeatInterval?: number;
  readonly heartbeatTimeout?: number;
}
