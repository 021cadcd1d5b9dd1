export { DifferentialSyncClient, type SyncStatus } from './client.js';
export type { DifferentialSyncClientOptions } from './options.js';
export type { ClientEvents } from './client-events.js';
export { Connection, browserOnlineSignal, type ConnectionState, type OnlineSignal } from './connection/connection.js';
export { backoffDelay } from './connection/backoff.js';
export type { WebSocketFactory, WebSocketFactoryOptions, WebSocketLike } from './connection/transport.js';
export { QualityMonitor } from './quality/quality-monitor.js';
export { MemoryStorage } from './storage/memory-storage.js';
export { LocalStorageStorage } from './storage/local-storage.js';
export { IndexedDbStorage } from './storage/indexed-db-storage.js';
export type { KeyValueStorage } from './storage/storage.js';
export { OfflineQueue, type PendingMutation } from './queue/offline-queue.js';
export { TypedEmitter } from './events.js';
export {
  SyncManager,
  type SyncManagerOptions,
  type SyncManagerSnapshot,
  type SyncManagerConfig,
  type SyncMetrics,
  type SyncEvent,
  type SyncEventKind,
} from './manager/sync-manager.js';
export type { HealthReport, HealthStatus } from './quality/quality-monitor.js';
export type { JsonObject, JsonValue, DeltaPayload, ConflictStrategy } from '@syncline/contracts';
