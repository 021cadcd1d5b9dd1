import { createContext, createElement, useContext, useEffect, useState, type ReactNode } from 'react';
import type { DifferentialSyncClient } from '../client.js';
import { SyncManager, type SyncManagerOptions } from '../manager/sync-manager.js';
import type { DifferentialSyncClientOptions } from '../options.js';

const SyncManagerContext = createContext<SyncManager | undefined>(undefined);

export type SyncManagerProviderProps =
  | { readonly manager: SyncManager; readonly children?: ReactNode }
  | { readonly options: SyncManagerOptions; readonly children?: ReactNode };

/**
 * Makes a {@link SyncManager} available to the hooks below it. Given `options`, it creates the
 * manager once, starts it on mount and stops it on unmount; given a `manager`, it starts it on
 * mount and leaves stopping to whoever made it.
 */
export function SyncManagerProvider(props: SyncManagerProviderProps): ReactNode {
  const [owned] = useState(() => ('options' in props ? new SyncManager(props.options) : undefined));
  const manager = owned ?? (props as { manager: SyncManager }).manager;
  useEffect(() => {
    void manager.start().catch(() => undefined); // failures are recorded as events; reconnection goes on
    return owned ? () => void owned.stop() : undefined;
  }, [manager, owned]);
  return createElement(SyncManagerContext.Provider, { value: manager }, props.children);
}

/** The manager of the nearest {@link SyncManagerProvider}; throws outside one. */
export function useManager(): SyncManager {
  const manager = useContext(SyncManagerContext);
  if (!manager) throw new Error('this hook needs a <SyncManagerProvider> above it, or client options of its own');
  return manager;
}

/** The provider's client, for what the hooks do not cover (e.g. `createDebouncedUpdate`). */
export function useSyncClient(): DifferentialSyncClient {
  return useManager().client;
}

/**
 * The manager for a hook that takes optional client options: its own one (created once, started
 * on mount, stopped on unmount) when given options, else the provider's.
 */
export function useOwnOrProvidedManager(options: DifferentialSyncClientOptions | undefined): SyncManager {
  const provided = useContext(SyncManagerContext);
  const [owned] = useState(() => (options ? new SyncManager({ client: options }) : undefined));
  useEffect(() => {
    if (!owned) return undefined;
    void owned.start().catch(() => undefined);
    return () => void owned.stop();
  }, [owned]);
  const manager = owned ?? provided;
  if (!manager) throw new Error('this hook needs client options or a <SyncManagerProvider> above it');
  return manager;
}
