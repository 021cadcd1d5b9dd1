import { QueryFailedError } from 'typeorm';

/**
 * What a failed batch needs:
 * - `stale`: an entity was written by another worker since this one read it (the batch's version
 *   check failed, or the two collided on a row): read again and recompute;
 * - `repeated-mutation`: a mutation id is already in the ledger (a resend later than JetStream's
 *   duplicate window): recompute with the ledger consulted;
 * - `bad-data`: PostgreSQL cannot store a value (class 22, data exception): it will fail every
 *   time, so the message at fault is found and terminated;
 * - `transient`: anything else (connection lost, a peer that did not answer): try again later.
 */
export type FailureKind = 'stale' | 'repeated-mutation' | 'bad-data' | 'transient';

export function failureKind(error: unknown): FailureKind {
  const cause = postgresErrorOf(error);
  const code = cause?.code ?? '';
  if (code === '40001' || code === '40P01') return 'stale';
  if (code === '23505') return cause?.constraint === 'mutations_pkey' ? 'repeated-mutation' : 'stale';
  if (code.startsWith('22')) return 'bad-data';
  return 'transient';
}

/** The PostgreSQL error behind a failure, whether it came through TypeORM or straight from the driver. */
export function postgresErrorOf(error: unknown): { code?: string; constraint?: string } | undefined {
  if (error instanceof QueryFailedError) return error.driverError as { code?: string; constraint?: string };
  if (error instanceof Error && typeof (error as { code?: unknown }).code === 'string')
    return error as { code?: string; constraint?: string };
  return undefined;
}
