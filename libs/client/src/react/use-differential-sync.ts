import type { DeltaPayload, JsonObject } from '@syncline/contracts';
import { useCallback, useMemo, useRef, useSyncExternalStore } from 'react';
import type { DifferentialSyncClient } from '../client.js';
import type { SyncManager, SyncMetrics } from '../manager/sync-manager.js';
import type { HealthReport } from '../quality/quality-monitor.js';
import type { ConnectionState } from '../connection/connection.js';
import type { DifferentialSyncClientOptions } from '../options.js';
import { useOwnOrProvidedManager } from './context.js';
import { useSnapshotOf } from './use-sync-manager.js';

export type Entities = Readonly<Record<string, JsonObject>>;
type Changes = Readonly<Record<string, JsonObject | null>>;

export interface DifferentialSyncState {
  /** The optimistic state of each entity type in `entityTypes`, by entity id. */
  readonly entities: Readonly<Record<string, Entities>>;
  readonly connectionState: ConnectionState;
  readonly isConnected: boolean;
  readonly pendingChanges: number;
  readonly lastSyncTimestamp: number | undefined;
  readonly metrics: SyncMetrics;
  readonly health: HealthReport;
}

export interface DifferentialSyncActions {
  readonly client: DifferentialSyncClient;
  readonly updateLocalState: (state: Changes, entityType: string) => Promise<void>;
  readonly updateLocalStateBatch: (updates: ReadonlyArray<{ state: Changes; entityType: string }>) => Promise<void>;
  readonly requestSync: (entityType: string) => Promise<DeltaPayload[]>;
  readonly subscribe: (entityTypes?: readonly string[]) => Promise<void>;
  readonly unsubscribe: (entityType: string) => Promise<void>;
  readonly connect: () => Promise<void>;
  readonly disconnect: () => Promise<void>;
  readonly reconnect: () => Promise<void>;
}

/**
 * A client of its own for this component (created once from `options`, connected on mount,
 * disconnected on unmount) as `[state, actions]`. Without options it uses the nearest
 * `SyncManagerProvider`'s client and its entity types.
 */
export function useDifferentialSync(
  options?: DifferentialSyncClientOptions,
): [DifferentialSyncState, DifferentialSyncActions] {
  const manager = useOwnOrProvidedManager(options);
  const entities = useEntityMap(manager, options?.entityTypes ?? manager.entityTypes);
  const snapshot = useSnapshotOf(manager);
  const state = useMemo(
    () => ({
      entities,
      connectionState: snapshot.connectionState,
      isConnected: snapshot.isConnected,
      pendingChanges: snapshot.metrics.pendingChanges,
      lastSyncTimestamp: snapshot.metrics.lastSyncTimestamp,
      metrics: snapshot.metrics,
      health: snapshot.health,
    }),
    [entities, snapshot],
  );
  return [state, useActions(manager)];
}

export interface EntityActions {
  /** Merges `patch` into the entity (creating it if absent); `null` in the patch removes a field. */
  readonly update: (entityId: string, patch: JsonObject) => Promise<void>;
  readonly remove: (entityId: string) => Promise<void>;
  readonly requestSync: () => Promise<DeltaPayload[]>;
}

/** One entity type's optimistic state, by id, with actions on it. */
export function useDifferentialSyncEntity(
  entityType: string,
  options?: DifferentialSyncClientOptions,
): [Entities, EntityActions] {
  const manager = useOwnOrProvidedManager(options);
  const getSnapshot = useCallback(() => manager.getEntities(entityType), [manager, entityType]);
  const entities = useSyncExternalStore(manager.watch, getSnapshot, getSnapshot);
  const actions = useMemo(
    () => ({
      update: (entityId: string, patch: JsonObject) =>
        manager.client.updateLocalState({ [entityId]: patch }, entityType),
      remove: (entityId: string) => manager.client.updateLocalState({ [entityId]: null }, entityType),
      requestSync: () => manager.client.requestSync(entityType),
    }),
    [manager, entityType],
  );
  return [entities, actions];
}

function useActions(manager: SyncManager): DifferentialSyncActions {
  return useMemo(
    () => ({
      client: manager.client,
      updateLocalState: (state: Changes, entityType: string) => manager.client.updateLocalState(state, entityType),
      updateLocalStateBatch: (updates: ReadonlyArray<{ state: Changes; entityType: string }>) =>
        manager.client.updateLocalStateBatch(updates),
      requestSync: (entityType: string) => manager.client.requestSync(entityType),
      subscribe: (entityTypes?: readonly string[]) => manager.subscribe(entityTypes),
      unsubscribe: (entityType: string) => manager.unsubscribe(entityType),
      connect: () => manager.connect(),
      disconnect: () => manager.disconnect(),
      reconnect: () => manager.reconnect(),
    }),
    [manager],
  );
}

/** The states of several types as one object, the same object until one of them changes. */
function useEntityMap(manager: SyncManager, entityTypes: readonly string[]): Readonly<Record<string, Entities>> {
  const cache = useRef<{ parts: Entities[]; value: Record<string, Entities> } | undefined>(undefined);
  const key = entityTypes.join('\u0000');
  const getSnapshot = useCallback(() => {
    const types = key === '' ? [] : key.split('\u0000');
    const parts = types.map((type) => manager.getEntities(type));
    const previous = cache.current;
    if (previous && previous.parts.length === parts.length && parts.every((part, i) => part === previous.parts[i]))
      return previous.value;
    const value = Object.fromEntries(types.map((type, i) => [type, parts[i] as Entities]));
    cache.current = { parts, value };
    return value;
  }, [manager, key]);
  return useSyncExternalStore(manager.watch, getSnapshot, getSnapshot);
}
