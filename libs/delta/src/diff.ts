import { isJsonObject, type FieldChange, type FieldDiff, type JsonObject, type JsonValue } from '@syncline/contracts';
import { jsonEqual } from './equal.js';
import { getOwn, unionKeys } from './objects.js';
import { encodePointer } from './pointer.js';

/**
 * The field-level changes that turn `before` into `after`.
 *
 * Objects are compared key by key (recursively, keys in code-unit order); arrays and scalars are
 * atomic, so a changed array is one `modified` change at its path. When the roots are not both
 * objects the whole document is one change at `""`.
 *
 * `undefined` means "no entity". Next to an object it counts as `{}`, so creating or deleting an
 * entity lists its fields as added or removed; whether the entity exists travels separately
 * (the `deleted` flag of a change event). Consequently `diff(undefined, {})` is empty.
 */
export function diff(before: JsonValue | undefined, after: JsonValue | undefined): FieldDiff[] {
  const from = before === undefined && isJsonObject(after) ? {} : before;
  const to = after === undefined && isJsonObject(before) ? {} : after;
  const changes: FieldDiff[] = [];
  if (isJsonObject(from) && isJsonObject(to)) diffObjects(from, to, '', changes);
  else pushValueChange('', from, to, changes);
  return changes;
}

function diffObjects(before: JsonObject, after: JsonObject, path: string, out: FieldDiff[]): void {
  for (const key of unionKeys(before, after)) {
    const field = path + encodePointer([key]);
    const from = getOwn(before, key);
    const to = getOwn(after, key);
    if (isJsonObject(from) && isJsonObject(to)) diffObjects(from, to, field, out);
    else pushValueChange(field, from, to, out);
  }
}

function pushValueChange(
  field: string,
  from: JsonValue | undefined,
  to: JsonValue | undefined,
  out: FieldDiff[],
): void {
  if (from === undefined) {
    if (to !== undefined) out.push({ field, changeType: 'added', newValue: to });
  } else if (to === undefined) {
    out.push({ field, changeType: 'removed', oldValue: from });
  } else if (!jsonEqual(from, to)) {
    out.push({ field, changeType: 'modified', oldValue: from, newValue: to });
  }
}

/** The changes as they travel: each stamped with the HLC timestamp of the mutation that made it. */
export function stampChanges(diffs: readonly FieldDiff[], timestamp: string): FieldChange[] {
  return diffs.map((change) => ({ ...change, timestamp }));
}
