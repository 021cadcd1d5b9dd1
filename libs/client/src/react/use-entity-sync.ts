import type { JsonObject } from '@syncline/contracts';
import { jsonEqual } from '@syncline/delta';
import { useCallback, useEffect, useMemo, useSyncExternalStore } from 'react';
import type { ClientEvents } from '../client-events.js';
import type { SyncEvent } from '../manager/sync-manager.js';
import { useManager } from './context.js';
import { useLatest } from './latest.js';
import { useSnapshotOf } from './use-sync-manager.js';

export interface EntitySync {
  /** This entity's recent events, newest first (from the provider's history, so bounded by its limit). */
  readonly events: readonly SyncEvent[];
  readonly latestEvent: SyncEvent | undefined;
  /** The entity's optimistic state; `null` when it does not exist (or no longer does). */
  readonly state: JsonObject | null;
}

/** One entity: its state and recent events; `onEvent` is called with each new event of it. */
export function useEntitySync(entityType: string, entityId: string, onEvent?: (event: SyncEvent) => void): EntitySync {
  const manager = useManager();
  const getState = useCallback(
    () => manager.getEntities(entityType)[entityId] ?? null,
    [manager, entityType, entityId],
  );
  const state = useSyncExternalStore(manager.watch, getState, getState);
  const { recentEvents } = useSnapshotOf(manager);
  const events = useMemo(
    () => recentEvents.filter((event) => event.entityType === entityType && event.entityId === entityId),
    [recentEvents, entityType, entityId],
  );
  const callback = useLatest(onEvent);
  useEffect(
    () =>
      manager.onEvent((event) => {
        if (event.entityType === entityType && event.entityId === entityId) callback.current?.(event);
      }),
    [manager, entityType, entityId, callback],
  );
  return useMemo(() => ({ events, latestEvent: events[0], state }), [events, state]);
}

export type StateChange = ClientEvents['state:change'];

/**
 * Calls `onChange(event, previous, next)` whenever one field of one entity takes a new value,
 * from any source (this client's edits, other clients', the server's answers): for reacting to
 * an order moving to another stage, say. It does not re-render the component.
 */
export function useFieldChange(
  entityType: string,
  entityId: string,
  field: string,
  onChange: (event: StateChange, previous: unknown, next: unknown) => void,
): void {
  const manager = useManager();
  const callback = useLatest(onChange);
  useEffect(
    () =>
      manager.client.on('state:change', (event) => {
        if (event.entityType !== entityType || event.entityId !== entityId) return;
        const previous = event.previous?.[field];
        const next = event.next?.[field];
        if (!jsonEqual(previous, next)) callback.current(event, previous, next);
      }),
    [manager, entityType, entityId, field, callback],
  );
}

export interface AutoRefreshOptions {
  /** Wait this long after the last change before refreshing (default 250 ms). */
  readonly debounceMs?: number;
  /** Which changes count (default: other clients' changes and the server's answers to ours). */
  readonly sources?: ReadonlyArray<StateChange['source']>;
}

/**
 * Calls `refresh` once changes to an entity (or, with `entityId` undefined, to any entity of the
 * type) stop arriving for `debounceMs`: for data derived elsewhere from synced entities.
 */
export function useAutoRefresh(
  entityType: string,
  entityId: string | undefined,
  refresh: () => void,
  options: AutoRefreshOptions = {},
): void {
  const manager = useManager();
  const callback = useLatest(refresh);
  const debounceMs = options.debounceMs ?? 250;
  const sources = (options.sources ?? ['remote', 'ack']).join(',');
  useEffect(() => {
    const counted = new Set(sources.split(','));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stop = manager.client.on('state:change', (event) => {
      if (event.entityType !== entityType || !counted.has(event.source)) return;
      if (entityId !== undefined && event.entityId !== entityId) return;
      clearTimeout(timer);
      timer = setTimeout(() => callback.current(), debounceMs);
    });
    return () => {
      stop();
      clearTimeout(timer);
    };
  }, [manager, entityType, entityId, debounceMs, sources, callback]);
}
