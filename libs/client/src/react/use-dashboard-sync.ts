import { useEffect, useState } from 'react';
import { useManager } from './context.js';
import { useLatest } from './latest.js';

export interface DashboardSyncOptions {
  /** Entity types whose changes count (default: all). */
  readonly entityTypes?: readonly string[];
  /** Wait this long after the last change before refreshing (default 500 ms). */
  readonly debounceMs?: number;
}

export interface DashboardSync {
  /** When `refresh` last ran (epoch ms). */
  readonly lastRefreshAt: number | undefined;
  readonly refreshCount: number;
}

/**
 * Calls `refresh` when synced data changed (another client's change, or the server's answer to
 * ours) and after a reconnect, at most once per quiet `debounceMs`: for dashboards whose figures
 * are computed from the data elsewhere.
 */
export function useDashboardSync(refresh: () => void, options: DashboardSyncOptions = {}): DashboardSync {
  const manager = useManager();
  const callback = useLatest(refresh);
  const [result, setResult] = useState<DashboardSync>({ lastRefreshAt: undefined, refreshCount: 0 });
  const debounceMs = options.debounceMs ?? 500;
  const types = options.entityTypes?.join('\u0000');
  useEffect(() => {
    const counted = types === undefined ? undefined : new Set(types.split('\u0000'));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const schedule = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        callback.current();
        setResult((previous) => ({ lastRefreshAt: Date.now(), refreshCount: previous.refreshCount + 1 }));
      }, debounceMs);
    };
    const stops = [
      manager.client.on('state:change', (event) => {
        if (event.source !== 'local' && (!counted || counted.has(event.entityType))) schedule();
      }),
      manager.client.on('connected', ({ reconnected }) => {
        if (reconnected) schedule();
      }),
    ];
    return () => {
      for (const stop of stops) stop();
      clearTimeout(timer);
    };
  }, [manager, types, debounceMs, callback]);
  return result;
}
