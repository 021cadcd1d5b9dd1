export type JsonPrimitive = string | number | boolean | null;
export type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** Limits that keep one message from costing the process more than it should. */
export const JSON_LIMITS = {
  maxDepth: 32,
  maxStringLength: 256 * 1024,
} as const;

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Half of a UTF-16 surrogate pair without its other half: it has no UTF-8 form, and `jsonb` refuses it. */
export const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Returns why a parsed JSON value is unsafe to store and merge, or `undefined` when it is safe:
 * nesting deeper than the limit (recursive algorithms would run away), NUL characters and lone
 * surrogates (PostgreSQL `jsonb` rejects both) and keys that pollute prototypes when merged.
 */
export function findUnsafeJson(value: unknown, depth = 0): string | undefined {
  if (depth > JSON_LIMITS.maxDepth) return `nesting deeper than ${JSON_LIMITS.maxDepth}`;
  if (typeof value === 'string') {
    if (value.length > JSON_LIMITS.maxStringLength) return 'string too long';
    if (value.includes('\u0000')) return 'string contains a NUL character';
    return LONE_SURROGATE.test(value) ? 'string contains a lone surrogate' : undefined;
  }
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : 'non-finite number';
  if (value === null || typeof value === 'boolean') return undefined;
  if (Array.isArray(value)) {
    for (const item of value) {
      const problem = findUnsafeJson(item, depth + 1);
      if (problem) return problem;
    }
    return undefined;
  }
  if (typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (FORBIDDEN_KEYS.has(key)) return `forbidden key "${key}"`;
      if (key.includes('\u0000') || LONE_SURROGATE.test(key)) return 'key contains a NUL character or a lone surrogate';
      const problem = findUnsafeJson(item, depth + 1);
      if (problem) return problem;
    }
    return undefined;
  }
  return `not a JSON value (${typeof value})`;
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
