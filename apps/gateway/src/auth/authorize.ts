import { ErrorCode, SynclineError, canRead, canWrite, type ClientFrame } from '@syncline/contracts';
import type { Principal } from './token-verifier.js';

/**
 * The permission check of every edge (WebSocket frames, SSE, HTTP): tenants are separated by
 * the subjects a principal's tenant selects; within the tenant, these decide per entity type.
 */
export function requireRead(principal: Principal, entityTypes: readonly string[]): void {
  const refused = entityTypes.filter((type) => !canRead(principal.permissions, type));
  if (refused.length > 0) throw forbidden(`may not read ${refused.join(', ')}`);
}

export function requireWrite(principal: Principal, entityType: string): void {
  if (!canWrite(principal.permissions, entityType)) throw forbidden(`may not write ${entityType}`);
}

export function requireAdmin(principal: Principal): void {
  if (!principal.permissions.admin) throw forbidden('needs the admin right');
}

/** What a client frame needs: reading for subscribe (and resume) and sync, writing for mutate. */
export function authorizeFrame(principal: Principal, frame: ClientFrame): void {
  switch (frame.type) {
    case 'subscribe':
      return requireRead(principal, frame.payload.entityTypes);
    case 'sync':
      return requireRead(principal, [frame.payload.entityType]);
    case 'mutate':
      return requireWrite(principal, frame.payload.entityType);
    default:
      return; // unsubscribe, ping and auth need no right
  }
}

function forbidden(message: string): SynclineError {
  return new SynclineError(ErrorCode.FORBIDDEN, message);
}
