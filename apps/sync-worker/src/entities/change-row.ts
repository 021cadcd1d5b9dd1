import type { ChangesRow } from '@syncline/persistence';

/** A change-log row: one entity version, as the batch that made it writes it and the outbox publishes it. */
export type ChangeRow = Omit<ChangesRow, 'id' | 'createdAt'>;
