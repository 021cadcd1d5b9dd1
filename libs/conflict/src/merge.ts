import { Hlc, isJsonObject, type JsonObject, type JsonValue } from '@syncline/contracts';
import { encodePointer, jsonEqual } from '@syncline/delta';
import type { ConflictInput, Resolution } from './types.js';
import { winnerOf } from './winner.js';

interface MergeContext {
  readonly input: ConflictInput;
  readonly contested: string[];
}

/**
 * Three-way merge against the base, at every level of the document:
 * - a value changed on one side only takes that side (a deletion is a change to "absent");
 * - both sides made the same change: that value;
 * - both changed an object differently and both results are objects: merge key by key;
 * - otherwise (arrays and scalars are atomic) the value is contested and the later write wins:
 *   the client's HLC against the time that value last changed on the server (the entity's HLC
 *   when that is not known); equal HLCs (the same event) keep the server's value. So an edit
 *   made offline keeps the fields it changed over values written before it, even when others
 *   changed other fields since.
 *
 * The entity itself goes through the same rule, so a deletion wins over an unchanged document,
 * a deletion against an edit is decided by HLC, and `contested` then holds `""`.
 */
export function mergeThreeWay(input: ConflictInput): Resolution {
  const context: MergeContext = { input, contested: [] };
  const merged = mergeValue(
    input.base ?? undefined,
    input.server.data ?? undefined,
    input.client.data ?? undefined,
    '',
    context,
  );
  const result = isJsonObject(merged) ? merged : null;
  return { result, winner: winnerOf(result, input), contested: context.contested };
}

// `undefined` is "absent": a missing field, or a missing (deleted) entity at the root.
function mergeValue(
  base: JsonValue | undefined,
  server: JsonValue | undefined,
  client: JsonValue | undefined,
  path: string,
  context: MergeContext,
): JsonValue | undefined {
  if (jsonEqual(server, client)) return server;
  if (jsonEqual(base, server)) return client;
  if (jsonEqual(base, client)) return server;
  if (isJsonObject(server) && isJsonObject(client)) {
    // Both turned a non-object (or nothing) into objects: every key of theirs is new, so merge against {}.
    return mergeObjects(isJsonObject(base) ? base : {}, server, client, path, context);
  }
  context.contested.push(path);
  return clientWroteLater(context.input, path) ? client : server;
}

/** Per-field last-write-wins: the client's edit against the server's last change at `path`. */
function clientWroteLater({ client, server }: ConflictInput, path: string): boolean {
  const serverWrote = lastChangeAt(server.fieldHlcs, path) ?? server.hlc;
  return Hlc.compare(client.hlc, serverWrote) > 0;
}

/** The latest change to the value at `path`: to it, inside it, or to a value enclosing it. */
function lastChangeAt(fieldHlcs: Readonly<Record<string, string>> | undefined, path: string): string | undefined {
  let latest: string | undefined;
  for (const [field, hlc] of Object.entries(fieldHlcs ?? {})) {
    const related = field === path || field.startsWith(`${path}/`) || path.startsWith(`${field}/`) || field === '';
    if (related && (latest === undefined || Hlc.compare(hlc, latest) > 0)) latest = hlc;
  }
  return latest;
}

function mergeObjects(
  base: JsonObject,
  server: JsonObject,
  client: JsonObject,
  path: string,
  context: MergeContext,
): JsonObject {
  const result: JsonObject = {};
  // Sorted keys: the result and `contested` do not depend on the key order of the inputs.
  for (const key of sortedKeys(server, client)) {
    const value = mergeValue(own(base, key), own(server, key), own(client, key), path + encodePointer([key]), context);
    if (value !== undefined) defineOwn(result, key, value);
  }
  return result;
}

// Keys only in the base were deleted on both sides, so the union of the two sides is enough.
function sortedKeys(a: JsonObject, b: JsonObject): string[] {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
}

function own(object: JsonObject, key: string): JsonValue | undefined {
  return Object.hasOwn(object, key) ? object[key] : undefined;
}

// defineProperty rather than assignment, so that a `__proto__` key stays data.
function defineOwn(object: JsonObject, key: string, value: JsonValue): void {
  Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true });
}
