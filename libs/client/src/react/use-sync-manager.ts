import { useMemo, useSyncExternalStore } from 'react';
import type { SyncManager, SyncManagerSnapshot } from '../manager/sync-manager.js';
import { useManager } from './context.js';

export interface SyncManagerView extends SyncManagerSnapshot {
  readonly manager: SyncManager;
  readonly connect: () => Promise<void>;
  readonly disconnect: () => Promise<void>;
  readonly reconnect: () => Promise<void>;
  readonly subscribe: (entityTypes?: readonly string[]) => Promise<void>;
  readonly unsubscribe: (entityType: string) => Promise<void>;
  readonly setConfig: SyncManager['setConfig'];
  readonly clearHistory: () => void;
}

/**
 * The provider's connection state, recent events, metrics, health and configuration, with the
 * actions that change them. Re-renders when any of them changes.
 */
export function useSyncManager(): SyncManagerView {
  const manager = useManager();
  const snapshot = useSnapshotOf(manager);
  const actions = useMemo(
    () => ({
      manager,
      connect: () => manager.connect(),
      disconnect: () => manager.disconnect(),
      reconnect: () => manager.reconnect(),
      subscribe: (entityTypes?: readonly string[]) => manager.subscribe(entityTypes),
      unsubscribe: (entityType: string) => manager.unsubscribe(entityType),
      setConfig: (change: Parameters<SyncManager['setConfig']>[0]) => manager.setConfig(change),
      clearHistory: () => manager.clearHistory(),
    }),
    [manager],
  );
  return useMemo(() => ({ ...snapshot, ...actions }), [snapshot, actions]);
}

/** A manager's snapshot, re-rendering when it is replaced. */
export function useSnapshotOf(manager: SyncManager): SyncManagerSnapshot {
  return useSyncExternalStore(manager.watch, manager.getSnapshot, manager.getSnapshot);
}
