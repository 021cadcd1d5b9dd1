import type { JsonObject } from '@syncline/client';

/** The entity type the board shows; every order is one entity of it. */
export const ORDERS = 'orders';

export const STAGES = ['new', 'picking', 'packed', 'shipped', 'delivered'] as const;
export type Stage = (typeof STAGES)[number];

export interface Order {
  readonly title: string;
  readonly customer: string;
  readonly amount: number;
  readonly stage: Stage;
  readonly note: string;
  readonly updatedBy: string;
}

const CUSTOMERS = ['Ada Lovelace', 'Grace Hopper', 'Alan Turing', 'Barbara Liskov', 'Edsger Dijkstra', 'Frances Allen'];

/** Reads an order from its synced document, tolerating fields another client has not set. */
export function toOrder(document: JsonObject): Order {
  const stage = STAGES.includes(document.stage as Stage) ? (document.stage as Stage) : 'new';
  return {
    title: typeof document.title === 'string' ? document.title : 'Untitled order',
    customer: typeof document.customer === 'string' ? document.customer : '',
    amount: typeof document.amount === 'number' ? document.amount : 0,
    stage,
    note: typeof document.note === 'string' ? document.note : '',
    updatedBy: typeof document.updatedBy === 'string' ? document.updatedBy : '',
  };
}

export function newOrder(user: string): { id: string; order: Order } {
  const code = Math.random().toString(36).slice(2, 7).toUpperCase();
  return {
    id: `o-${code.toLowerCase()}`,
    order: {
      title: `Order #${code}`,
      customer: CUSTOMERS[Math.floor(Math.random() * CUSTOMERS.length)] ?? 'Ada Lovelace',
      amount: Math.round(20 + Math.random() * 480),
      stage: 'new',
      note: '',
      updatedBy: user,
    },
  };
}

export function nextStage(stage: Stage, step: 1 | -1): Stage | undefined {
  return STAGES[STAGES.indexOf(stage) + step];
}
