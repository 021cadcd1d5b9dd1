import { z } from 'zod';
import { findUnsafeJson, type JsonObject, type JsonValue } from './json.js';

// Apart from json.ts, so that a browser bundle using only the JSON checks leaves zod out.

/** Any JSON value that passes {@link findUnsafeJson}. */
export const jsonValueSchema: z.ZodType<JsonValue> = z.custom<JsonValue>(
  (value) => findUnsafeJson(value) === undefined,
  { message: 'not safe JSON (too deep, NUL characters, forbidden keys or non-finite numbers)' },
);

export const jsonObjectSchema: z.ZodType<JsonObject> = z.custom<JsonObject>(
  (value) =>
    typeof value === 'object' && value !== null && !Array.isArray(value) && findUnsafeJson(value) === undefined,
  { message: 'expected a JSON object that is safe JSON (depth, NUL characters, forbidden keys)' },
);
