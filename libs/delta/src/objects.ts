import type { JsonObject, JsonValue } from '@syncline/contracts';

/**
 * Object access that only ever sees own properties. Documents are plain objects, so a key such as
 * `constructor` or `toString` must not resolve to `Object.prototype`, and writing `__proto__`
 * must create a property instead of changing the prototype.
 */
export function getOwn(object: JsonObject, key: string): JsonValue | undefined {
  return Object.hasOwn(object, key) ? object[key] : undefined;
}

export function setOwn(object: JsonObject, key: string, value: JsonValue): void {
  if (key === '__proto__') {
    Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true });
  } else {
    object[key] = value;
  }
}

export function deleteOwn(object: JsonObject, key: string): void {
  Reflect.deleteProperty(object, key);
}

/** A shallow copy; spread defines properties, so an own `__proto__` key is copied as data. */
export function copyObject(object: JsonObject): JsonObject {
  return { ...object };
}

/** The keys of both objects, once each, in code-unit order so that output never depends on insertion order. */
export function unionKeys(...objects: readonly JsonObject[]): string[] {
  const keys = new Set<string>();
  for (const object of objects) for (const key of Object.keys(object)) keys.add(key);
  return [...keys].sort();
}
