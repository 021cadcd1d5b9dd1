/**
 * Helpers shared by the storage adapters, so that every adapter stores exactly what JSON can
 * express: a value set through one adapter reads back the same through any other (no `Date`
 * objects surviving in IndexedDB but not in localStorage, no `undefined` members here and not there).
 */

/** The JSON text of a value, or a `TypeError` when JSON cannot express it at all. */
export function toJsonText(value: unknown): string {
  const text = JSON.stringify(value) as string | undefined;
  // `JSON.stringify` returns `undefined` (not a string) for `undefined`, functions and symbols.
  if (text === undefined) throw new TypeError(`cannot store a value that is not JSON (${typeof value})`);
  return text;
}

/** A deep copy through JSON: what a caller gets can never alias what is stored. */
export function cloneJson<T>(value: unknown): T {
  return JSON.parse(toJsonText(value)) as T;
}

/** The keys that start with `prefix`, in lexicographic (UTF-16 code unit) order, like IndexedDB. */
export function keysWithPrefix(keys: Iterable<string>, prefix: string): string[] {
  const matching: string[] = [];
  for (const key of keys) if (key.startsWith(prefix)) matching.push(key);
  return matching.sort(compareKeys);
}

function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}
