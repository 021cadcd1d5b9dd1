import type { DeltaPayload, JsonObject, WelcomePayload } from '@syncline/contracts';
import type { ConnectionState } from './connection/connection.js';

/** Everything a {@link DifferentialSyncClient} reports, by event name. */
export interface ClientEvents {
  connected: { welcome: WelcomePayload; reconnected: boolean };
  disconnected: { code: number; reason: string; willReconnect: boolean };
  'connection:state': { state: ConnectionState; previous: ConnectionState };
  error: { code: string; message: string; mutationId?: string; entityType?: string; cause?: unknown };
  'reconnect:scheduled': { attempt: number; delay: number };
  'reconnect:failed': { attempts: number };
  /** The gateway took a fresh token on the open connection; `revoked` types are no longer readable. */
  'auth:renewed': { expiresAt?: number; revoked: readonly string[] };
  subscribed: { entityType: string; cursor: string; replayed: number };
  unsubscribed: { entityType: string };
  'sync:requested': { entityType: string };
  'sync:response': { entityType: string; deltas: readonly DeltaPayload[] };
  'sync:delta': DeltaPayload;
  'sync:performance': { duration: number; sub100msRate: number };
  'sync:required': { entityType: string; reason: string };
  /** The optimistic view of an entity type changed. */
  'state:updated': { entityType: string; state: Readonly<Record<string, JsonObject>> };
  /** One entity's document changed in the optimistic view. */
  'state:change': {
    entityType: string;
    entityId: string;
    previous: JsonObject | null;
    next: JsonObject | null;
    source: 'local' | 'remote' | 'ack';
  };
  'delta:processed': DeltaPayload;
  'deltas:processed': { entityType: string; count: number };
  /** A change is in the offline queue, on its way to the server, under this mutation id. */
  'mutation:queued': { mutationId: string; entityType: string; entityId: string };
  /** A mutation's final outcome. */
  'mutation:settled': { mutationId: string; entityType: string; entityId: string; status: string; version: number };
  'quality:updated': { averageLatency: number; sub100msSuccessRate: number; qualityScore: number };
}
