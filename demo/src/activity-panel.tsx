import { useConnectionHealth, useSyncManager } from '@syncline/client/react';

/** Recent events (kept across reloads) and what the health check recommends. */
export function ActivityPanel() {
  const { recentEvents, metrics, clearHistory } = useSyncManager();
  const health = useConnectionHealth();
  return (
    <aside className="activity">
      <h2>
        Health: <span className={`health health-${health.status}`}>{health.status}</span>
      </h2>
      {health.recommendations.length > 0 && (
        <ul className="recommendations">
          {health.recommendations.map((text) => (
            <li key={text}>{text}</li>
          ))}
        </ul>
      )}
      <p className="metrics">
        received {metrics.changesReceived} · applied {metrics.mutationsApplied} · merged {metrics.mutationsMerged} ·
        rejected {metrics.mutationsRejected} · reconnects {metrics.reconnects}
      </p>
      <h2>
        Activity <button onClick={clearHistory}>clear</button>
      </h2>
      <ol className="events" data-testid="activity">
        {recentEvents.map((event) => (
          <li key={event.seq} className={`event event-${event.kind}`}>
            <time>{new Date(event.at).toLocaleTimeString()}</time> {event.message}
          </li>
        ))}
      </ol>
    </aside>
  );
}
