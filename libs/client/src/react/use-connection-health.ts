import { useMemo } from 'react';
import type { ConnectionState } from '../connection/connection.js';
import type { HealthStatus } from '../quality/quality-monitor.js';
import { useManager } from './context.js';
import { useSnapshotOf } from './use-sync-manager.js';

export interface ConnectionHealth {
  readonly status: HealthStatus;
  readonly recommendations: readonly string[];
  readonly connectionState: ConnectionState;
  readonly isConnected: boolean;
  readonly averageLatency: number;
  readonly sub100msSuccessRate: number;
  readonly qualityScore: number;
  readonly pendingChanges: number;
  readonly lastSyncTimestamp: number | undefined;
}

/** The provider's connection health, latency and backlog, for a status badge or panel. */
export function useConnectionHealth(): ConnectionHealth {
  const { health, metrics, connectionState, isConnected } = useSnapshotOf(useManager());
  return useMemo(
    () => ({
      status: health.status,
      recommendations: health.recommendations,
      connectionState,
      isConnected,
      averageLatency: metrics.averageLatency,
      sub100msSuccessRate: metrics.sub100msSuccessRate,
      qualityScore: metrics.qualityScore,
      pendingChanges: metrics.pendingChanges,
      lastSyncTimestamp: metrics.lastSyncTimestamp,
    }),
    [health, metrics, connectionState, isConnected],
  );
}
