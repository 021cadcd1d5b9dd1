import {
  ErrorCode,
  SynclineError,
  isJsonObject,
  type FieldDiff,
  type JsonObject,
  type JsonValue,
} from '@syncline/contracts';
import { copyObject, deleteOwn, getOwn, setOwn } from './objects.js';
import { decodePointer } from './pointer.js';

/**
 * Copy-on-write for one `applyDiff` call: an object of the input is copied the first time it is
 * written and the copy is reused for later changes, so the input is never mutated and applying
 * n changes costs O(n) copies rather than one copy of every ancestor per change.
 */
class Draft {
  private readonly owned = new WeakSet<JsonObject>();

  writable(object: JsonObject | undefined): JsonObject {
    if (object !== undefined && this.owned.has(object)) return object;
    const copy = object === undefined ? {} : copyObject(object);
    this.owned.add(copy);
    return copy;
  }
}

/**
 * Applies field changes to a document and returns the new document; the input is never mutated
 * and unchanged subtrees are shared. `added` and `modified` set the value, creating missing
 * parents (a parent that is not an object is replaced by one, as the change says it is an
 * object); `removed` deletes the field and is a no-op when it is already absent. A change at
 * `""` replaces the whole document, and removing it gives `undefined`.
 */
export function applyDiff(doc: JsonValue | undefined, changes: readonly FieldDiff[]): JsonValue | undefined {
  const draft = new Draft();
  let result = doc;
  for (const change of changes) {
    const segments = decodePointer(change.field);
    result =
      change.changeType === 'removed'
        ? removeIn(result, segments, 0, draft)
        : setIn(result, segments, 0, newValueOf(change), draft);
  }
  return result;
}

function newValueOf(change: FieldDiff): JsonValue {
  if (change.newValue === undefined) {
    throw new SynclineError(
      ErrorCode.VALIDATION_FAILED,
      `${change.changeType} change at "${change.field.slice(0, 80)}" has no newValue`,
    );
  }
  return change.newValue;
}

function setIn(
  node: JsonValue | undefined,
  segments: readonly string[],
  index: number,
  value: JsonValue,
  draft: Draft,
): JsonValue {
  const key = segments[index];
  if (key === undefined) return value;
  const container = draft.writable(isJsonObject(node) ? node : undefined);
  setOwn(container, key, setIn(getOwn(container, key), segments, index + 1, value, draft));
  return container;
}

function removeIn(
  node: JsonValue | undefined,
  segments: readonly string[],
  index: number,
  draft: Draft,
): JsonValue | undefined {
  const key = segments[index];
  if (key === undefined) return undefined;
  if (!isJsonObject(node) || !Object.hasOwn(node, key)) return node;
  if (index === segments.length - 1) {
    const container = draft.writable(node);
    deleteOwn(container, key);
    return container;
  }
  const child = node[key];
  const next = removeIn(child, segments, index + 1, draft);
  // The path ends below a missing key or a non-object: nothing was removed, so keep the node
  // rather than copying it. (`next` is never `undefined` here; the check narrows the type.)
  if (next === child || next === undefined) return node;
  const container = draft.writable(node);
  setOwn(container, key, next);
  return container;
}
