import { IndexedDbStorage, SyncManager } from '@syncline/client';
import { SyncManagerProvider } from '@syncline/client/react';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './app.js';
import { ORDERS } from './orders.js';

/** What the demo server's `/session` answers: where the gateway is and a token for this user. */
interface Session {
  readonly wsUrl: string;
  readonly token: string;
  readonly user: string;
}

async function fetchSession(user: string): Promise<Session> {
  const response = await fetch(`/session?user=${encodeURIComponent(user)}`);
  if (!response.ok) throw new Error(`/session answered ${response.status}`);
  return (await response.json()) as Session;
}

/**
 * One client id per tab, kept across reloads of that tab (sessionStorage): a reloaded tab finds
 * its own offline queue again, and two tabs are two clients.
 */
function tabClientId(): string {
  const saved = sessionStorage.getItem('syncline-demo/client-id');
  if (saved) return saved;
  const id = `tab-${Math.random().toString(36).slice(2, 10)}`;
  sessionStorage.setItem('syncline-demo/client-id', id);
  return id;
}

function userName(): string {
  const fromUrl = new URLSearchParams(location.search).get('user');
  if (fromUrl) return fromUrl;
  const saved = sessionStorage.getItem('syncline-demo/user');
  if (saved) return saved;
  const user = `user-${Math.random().toString(36).slice(2, 6)}`;
  sessionStorage.setItem('syncline-demo/user', user);
  return user;
}

async function main(): Promise<void> {
  const user = userName();
  const session = await fetchSession(user);
  const storage = await IndexedDbStorage.open('syncline-demo');
  const manager = new SyncManager({
    client: {
      clientId: tabClientId(),
      websocketUrl: session.wsUrl,
      entityTypes: [ORDERS],
      // `?transport=sse` shows the same app over Server-Sent Events and HTTP.
      transport: new URLSearchParams(location.search).get('transport') === 'sse' ? 'sse' : 'websocket',
      // A fresh token for every connection, so a long-lived tab never reconnects with an expired one.
      tokenProvider: async () => (await fetchSession(user)).token,
      storage,
    },
    config: { historyLimit: 50 },
  });
  const root = document.getElementById('root');
  if (!root) throw new Error('the page has no #root element');
  createRoot(root).render(
    <StrictMode>
      <SyncManagerProvider manager={manager}>
        <App user={session.user} />
      </SyncManagerProvider>
    </StrictMode>,
  );
}

main().catch((error: unknown) => {
  document.body.textContent = `The demo could not start: ${error instanceof Error ? error.message : String(error)}`;
});
