import { applyDiff } from '@syncline/delta';
import { Hlc, isJsonObject, type FieldChange, type FieldDiff, type JsonObject } from '@syncline/contracts';

/** The change that undoes `change`: applying it to the newer document gives the older one. */
export function invertChange(change: FieldDiff): FieldDiff {
  switch (change.changeType) {
    case 'added':
      return {
        field: change.field,
        changeType: 'removed',
        ...(change.newValue === undefined ? {} : { oldValue: change.newValue }),
      };
    case 'removed':
      return {
        field: change.field,
        changeType: 'added',
        ...(change.oldValue === undefined ? {} : { newValue: change.oldValue }),
      };
    case 'modified':
      return {
        field: change.field,
        changeType: 'modified',
        ...(change.newValue === undefined ? {} : { oldValue: change.newValue }),
        ...(change.oldValue === undefined ? {} : { newValue: change.oldValue }),
      };
  }
}

/**
 * The document as it was at `baseVersion`, rebuilt by undoing the logged changes since then,
 * newest first. `undefined` when the log no longer holds every one of them (pruned): the merge
 * then treats every field both sides hold as contested, and falls back to last-write-wins.
 */
export function documentAtVersion(
  current: JsonObject | null,
  currentVersion: number,
  baseVersion: number,
  logged: readonly { version: number; changes: readonly FieldDiff[] }[],
): JsonObject | null | undefined {
  if (baseVersion === 0) return null;
  const needed = currentVersion - baseVersion;
  const since = logged.filter((entry) => entry.version > baseVersion && entry.version <= currentVersion);
  if (since.length !== needed) return undefined;
  let doc: unknown = current ?? {};
  for (const entry of [...since].sort((a, b) => b.version - a.version)) {
    doc = applyDiff(doc as JsonObject, entry.changes.map(invertChange));
  }
  return isJsonObject(doc) ? doc : null;
}

/**
 * When each field last changed after `baseVersion`, by JSON Pointer, from the logged changes
 * (each field change carries the HLC of the write that made it).
 */
export function fieldHlcsSince(
  baseVersion: number,
  logged: readonly { version: number; changes: readonly FieldChange[] }[],
): Record<string, string> {
  const latest: Record<string, string> = {};
  for (const entry of logged) {
    if (entry.version <= baseVersion) continue;
    for (const { field, timestamp } of entry.changes) {
      const known = Object.hasOwn(latest, field) ? latest[field] : undefined;
      if (known === undefined || Hlc.compare(timestamp, known) > 0) latest[field] = timestamp;
    }
  }
  return latest;
}
