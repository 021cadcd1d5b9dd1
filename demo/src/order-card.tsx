import { useDifferentialSyncEntity, useFieldChange, useSyncClient } from '@syncline/client/react';
import { useEffect, useMemo, useState } from 'react';
import { nextStage, ORDERS, type Order } from './orders.js';

const NOTE_DEBOUNCE_MS = 400;
const FLASH_MS = 900;

/** One order: move it between stages, edit its note, delete it. Flashes when someone else moves it. */
export function OrderCard({ id, order, user }: { id: string; order: Order; user: string }) {
  const [, orders] = useDifferentialSyncEntity(ORDERS);
  const client = useSyncClient();
  // Typing makes one mutation per pause, not one per keystroke.
  const saveNote = useMemo(() => client.createDebouncedUpdate(NOTE_DEBOUNCE_MS), [client]);
  const [draft, setDraft] = useState<string | undefined>(undefined);
  const [flash, setFlash] = useState(false);

  useFieldChange(ORDERS, id, 'stage', (event) => {
    if (event.source === 'remote') setFlash(true);
  });
  useEffect(() => {
    if (!flash) return undefined;
    const timer = setTimeout(() => setFlash(false), FLASH_MS);
    return () => clearTimeout(timer);
  }, [flash]);

  const move = (step: 1 | -1) => {
    const stage = nextStage(order.stage, step);
    if (stage) void orders.update(id, { stage, updatedBy: user });
  };

  return (
    <article className={flash ? 'card flash' : 'card'} data-testid={`order-${id}`} data-stage={order.stage}>
      <header>
        <b>{order.title}</b>
        <span className="amount">${order.amount}</span>
      </header>
      <small>
        {order.customer} · last by {order.updatedBy || 'nobody'}
      </small>
      <input
        aria-label={`note for ${order.title}`}
        placeholder="add a note"
        value={draft ?? order.note}
        onFocus={() => setDraft(order.note)}
        onBlur={() => setDraft(undefined)}
        onChange={(event) => {
          setDraft(event.target.value);
          saveNote({ [id]: { note: event.target.value, updatedBy: user } }, ORDERS);
        }}
      />
      <footer>
        <button aria-label="move back" disabled={!nextStage(order.stage, -1)} onClick={() => move(-1)}>
          ◀
        </button>
        <button aria-label="move on" disabled={!nextStage(order.stage, 1)} onClick={() => move(1)}>
          ▶
        </button>
        <button aria-label="delete" className="delete" onClick={() => void orders.remove(id)}>
          ✕
        </button>
      </footer>
    </article>
  );
}
