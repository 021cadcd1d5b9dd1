import { isJsonObject, type JsonValue } from '@syncline/contracts';
import { copyObject, deleteOwn, getOwn, setOwn } from './objects.js';

/**
 * RFC 7386 JSON Merge Patch: an object patch merges into the target recursively and `null`
 * deletes a member; any other patch (array, scalar, `null` at the root) replaces the target.
 * Returns a new value; neither argument is mutated.
 */
export function applyMergePatch(target: JsonValue | undefined, patch: JsonValue): JsonValue {
  if (!isJsonObject(patch)) return patch;
  const result = isJsonObject(target) ? copyObject(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) deleteOwn(result, key);
    else setOwn(result, key, applyMergePatch(getOwn(result, key), value));
  }
  return result;
}
