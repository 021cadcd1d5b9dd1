import { Hlc, type ConflictStrategy, type JsonObject } from '@syncline/contracts';
import { mergeThreeWay } from './merge.js';
import type { ConflictInput, Resolution, Side } from './types.js';
import { winnerOf } from './winner.js';

/**
 * Resolves concurrent changes of one entity with the tenant's strategy. Pure and deterministic:
 * the same input always gives the same resolution, on every replica of the conflict service.
 *
 * - `last-write-wins`: the whole document of the side with the later HLC (string order, so equal
 *   times fall to the node id in the HLC); identical HLCs keep the server's document.
 * - `server-wins` / `client-wins`: that side's document.
 * - `merge`: {@link mergeThreeWay}.
 *
 * Every strategy reports the same `contested` fields (those both sides changed differently),
 * so a caller can tell what a whole-document strategy overrode.
 */
export function resolveConflict(strategy: ConflictStrategy, input: ConflictInput): Resolution {
  switch (strategy) {
    case 'merge':
      return mergeThreeWay(input);
    case 'server-wins':
      return wholeDocument(input.server.data, input);
    case 'client-wins':
      return wholeDocument(input.client.data, input);
    case 'last-write-wins':
      return wholeDocument(laterSide(input).data, input);
    default:
      return unknownStrategy(strategy);
  }
}

function laterSide(input: ConflictInput): Side {
  return Hlc.compare(input.client.hlc, input.server.hlc) > 0 ? input.client : input.server;
}

function wholeDocument(result: JsonObject | null, input: ConflictInput): Resolution {
  return { result, winner: winnerOf(result, input), contested: mergeThreeWay(input).contested };
}

// Strategies come from validated configuration; an unknown one is a programming error, not data.
function unknownStrategy(strategy: never): never {
  throw new Error(`unknown conflict strategy: ${String(strategy)}`);
}
