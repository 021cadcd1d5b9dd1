import { QueryFailedError } from 'typeorm';

export type FailureKind = 'bad-data' | 'transient';

/**
 * Whether a failed batch can succeed later. PostgreSQL's class 22 (data exception: a value it
 * cannot store) will fail every time; connection loss, deadlocks, serialization failures, a
 * concurrent duplicate (23505) and a peer that did not answer are worth retrying.
 */
export function failureKind(error: unknown): FailureKind {
  if (error instanceof QueryFailedError) {
    const code = (error.driverError as { code?: string } | undefined)?.code ?? '';
    if (code.startsWith('22')) return 'bad-data';
  }
  return 'transient';
}
