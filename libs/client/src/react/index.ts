/**
 * React bindings of the Syncline client: thin `useSyncExternalStore` adapters over
 * {@link SyncManager} and {@link DifferentialSyncClient}. The core entry imports no React.
 */
export { SyncManagerProvider, useSyncClient, type SyncManagerProviderProps } from './context.js';
export { useSyncManager, type SyncManagerView } from './use-sync-manager.js';
export {
  useDifferentialSync,
  useDifferentialSyncEntity,
  type DifferentialSyncState,
  type DifferentialSyncActions,
  type EntityActions,
  type Entities,
} from './use-differential-sync.js';
export {
  useEntitySync,
  useFieldChange,
  useAutoRefresh,
  type EntitySync,
  type StateChange,
  type AutoRefreshOptions,
} from './use-entity-sync.js';
export { useConnectionHealth, type ConnectionHealth } from './use-connection-health.js';
export { useDashboardSync, type DashboardSync, type DashboardSyncOptions } from './use-dashboard-sync.js';
export { SyncManager } from '../manager/sync-manager.js';
export type { SyncEvent, SyncManagerSnapshot, SyncMetrics, SyncManagerConfig } from '../manager/sync-manager.js';
