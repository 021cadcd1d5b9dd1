import type { ChangesRow } from '@syncline/persistence';

/** A change-log row: one entity version, as the batch that made it writes it and the outbox publishes it. */
export type ChangeRow = Omit<ChangesRow, 'id' | 'createdAt'>;

/** The columns of a {@link ChangeRow}, for writing and reading one. */
export const CHANGE_ROW_COLUMNS = [
  'tenant',
  'entityType',
  'entityId',
  'version',
  'mutationId',
  'clientId',
  'op',
  'status',
  'changes',
  'deleted',
  'vectorClock',
  'hlc',
  'traceparent',
  'gatewayId',
  'connectionId',
  'receivedAt',
  'mutationStream',
  'mutationSeq',
] as const satisfies readonly (keyof ChangeRow)[];
