import { useSyncClient } from '@syncline/client/react';
import { ActivityPanel } from './activity-panel.js';
import { Board } from './board.js';
import { StatusBar } from './status-bar.js';
import { newOrder, ORDERS } from './orders.js';

export function App({ user }: { user: string }) {
  const client = useSyncClient();
  const addOrder = () => {
    const { id, order } = newOrder(user);
    void client.updateLocalState({ [id]: { ...order } }, ORDERS);
  };
  return (
    <>
      <StatusBar user={user} onNewOrder={addOrder} />
      <div className="layout">
        <Board user={user} />
        <ActivityPanel />
      </div>
    </>
  );
}
