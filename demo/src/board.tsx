import { useDifferentialSyncEntity } from '@syncline/client/react';
import { useMemo } from 'react';
import { OrderCard } from './order-card.js';
import { ORDERS, STAGES, toOrder, type Order } from './orders.js';

/** The orders in one column per stage, oldest title first so cards do not jump around. */
export function Board({ user }: { user: string }) {
  const [entities] = useDifferentialSyncEntity(ORDERS);
  const byStage = useMemo(() => {
    const columns = new Map<string, Array<[string, Order]>>(STAGES.map((stage) => [stage, []]));
    for (const [id, document] of Object.entries(entities)) {
      const order = toOrder(document);
      columns.get(order.stage)?.push([id, order]);
    }
    for (const cards of columns.values()) cards.sort(([, a], [, b]) => a.title.localeCompare(b.title));
    return columns;
  }, [entities]);

  return (
    <main className="board">
      {STAGES.map((stage) => (
        <section key={stage} className="column" data-testid={`column-${stage}`}>
          <h2>
            {stage} <span className="count">{byStage.get(stage)?.length ?? 0}</span>
          </h2>
          {byStage.get(stage)?.map(([id, order]) => (
            <OrderCard key={id} id={id} order={order} user={user} />
          ))}
        </section>
      ))}
    </main>
  );
}
