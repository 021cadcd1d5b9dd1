import { randomBytes } from 'node:crypto';

/** A short random id for a replica, safe as a subject token. */
export function randomInstanceId(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}
