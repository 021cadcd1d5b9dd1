import { useConnectionHealth, useSyncManager } from '@syncline/client/react';

const STATE_LABELS: Record<string, string> = {
  connected: 'live',
  connecting: 'connecting',
  reconnecting: 'reconnecting',
  disconnected: 'offline',
  error: 'error',
};

/** Connection state, latency, quality and pending changes, with the offline switch. */
export function StatusBar({ user, onNewOrder }: { user: string; onNewOrder: () => void }) {
  const health = useConnectionHealth();
  const { config, connect, disconnect } = useSyncManager();
  return (
    <header className="status-bar">
      <b className="brand">Syncline</b>
      <span className={`state state-${health.connectionState}`} data-testid="connection-state">
        <span className="dot" />
        {STATE_LABELS[health.connectionState] ?? health.connectionState}
      </span>
      <span>
        latency{' '}
        <b data-testid="latency">{health.averageLatency > 0 ? `${health.averageLatency.toFixed(0)} ms` : '–'}</b>
      </span>
      <span>
        quality <b>{health.qualityScore.toFixed(0)}</b>
      </span>
      <span>
        pending <b data-testid="pending-count">{health.pendingChanges}</b>
      </span>
      <span>
        you are <b>{user}</b>
      </span>
      <span className="spacer" />
      <button data-testid="toggle-offline" onClick={() => void (config.workOffline ? connect() : disconnect())}>
        {config.workOffline ? 'Go online' : 'Work offline'}
      </button>
      <button data-testid="new-order" onClick={onNewOrder}>
        New order
      </button>
    </header>
  );
}
