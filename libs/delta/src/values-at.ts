import { isJsonObject, type JsonValue } from '@syncline/contracts';
import { copyObject, deleteOwn, getOwn, setOwn } from './objects.js';
import { decodePointer } from './pointer.js';

/**
 * `target` with the value at each JSON Pointer taken from `source`, or removed where `source`
 * has none. Neither argument is modified. Where `target` and `source` stop being objects on the
 * way to a pointer, the value at that point is taken whole from `source`: there is no object
 * left to set a field in.
 */
export function withValuesAt(
  target: JsonValue | undefined,
  source: JsonValue | undefined,
  pointers: Iterable<string>,
): JsonValue | undefined {
  let result = target;
  for (const pointer of pointers) result = withValueAt(result, source, decodePointer(pointer));
  return result;
}

function withValueAt(
  target: JsonValue | undefined,
  source: JsonValue | undefined,
  segments: readonly string[],
): JsonValue | undefined {
  const [key, ...rest] = segments;
  if (key === undefined || !isJsonObject(target) || !isJsonObject(source)) return source;
  const value = withValueAt(getOwn(target, key), getOwn(source, key), rest);
  const copy = copyObject(target);
  if (value === undefined) deleteOwn(copy, key);
  else setOwn(copy, key, value);
  return copy;
}
