import type { JsonObject } from '@syncline/contracts';
import { jsonEqual } from '@syncline/delta';
import type { ConflictInput, Resolution } from './types.js';

/** The client is asked first: when both sides hold the result, the client's mutation counts as applied. */
export function winnerOf(result: JsonObject | null, input: ConflictInput): Resolution['winner'] {
  if (jsonEqual(result, input.client.data)) return 'client';
  if (jsonEqual(result, input.server.data)) return 'server';
  return 'merged';
}
