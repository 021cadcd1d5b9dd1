import { isJsonObject, type JsonObject, type JsonValue } from '@syncline/contracts';

/**
 * Deep equality of JSON values: key order does not matter, array order does, and `undefined`
 * (absent) equals only itself. Numbers compare with `===`, so `0` equals `-0` as in JSON text.
 */
export function jsonEqual(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined || a === null || b === null) return false;
  if (Array.isArray(a)) return Array.isArray(b) && arraysEqual(a, b);
  if (isJsonObject(a)) return isJsonObject(b) && objectsEqual(a, b);
  return false;
}

function arraysEqual(a: readonly JsonValue[], b: readonly JsonValue[]): boolean {
  return a.length === b.length && a.every((item, index) => jsonEqual(item, b[index]));
}

function objectsEqual(a: JsonObject, b: JsonObject): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => Object.hasOwn(b, key) && jsonEqual(a[key], b[key]));
}
