import { z } from 'zod';

/** How concurrent mutations of one entity are resolved, chosen per tenant and entity type. */
export const ConflictStrategy = {
  lastWriteWins: 'last-write-wins',
  serverWins: 'server-wins',
  clientWins: 'client-wins',
  merge: 'merge',
} as const;
export type ConflictStrategy = (typeof ConflictStrategy)[keyof typeof ConflictStrategy];
export const conflictStrategySchema = z.enum(['last-write-wins', 'server-wins', 'client-wins', 'merge']);

/** What became of a mutation. */
export const MutationStatus = {
  /** Applied as the client proposed it. */
  applied: 'applied',
  /** Concurrent with other changes; the result combines both (see the ack's `data`). */
  merged: 'merged',
  /** Concurrent, and the strategy kept the server's state; the client must roll back. */
  rejected: 'rejected',
} as const;
export type MutationStatus = (typeof MutationStatus)[keyof typeof MutationStatus];
export const mutationStatusSchema = z.enum(['applied', 'merged', 'rejected']);
