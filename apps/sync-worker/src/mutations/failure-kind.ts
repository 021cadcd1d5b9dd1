import { QueryFailedError } from 'typeorm';

export type FailureKind = 'bad-data' | 'transient';

/**
 * Whether a failed batch can succeed later. PostgreSQL's class 22 (data exception: a value it
 * cannot store) will fail every time; connection loss, deadlocks, serialization failures, a
 * concurrent duplicate (23505) and a peer that did not answer are worth retrying.
 */
export function failureKind(error: unknown): FailureKind {
  return (postgresErrorOf(error)?.code ?? '').startsWith('22') ? 'bad-data' : 'transient';
}

/** The PostgreSQL error behind a failure, whether it came through TypeORM or straight from the driver. */
export function postgresErrorOf(error: unknown): { code?: string; constraint?: string } | undefined {
  if (error instanceof QueryFailedError) return error.driverError as { code?: string; constraint?: string };
  if (error instanceof Error && typeof (error as { code?: unknown }).code === 'string')
    return error as { code?: string };
  return undefined;
}
