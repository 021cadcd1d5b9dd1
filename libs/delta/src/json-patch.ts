import { ErrorCode, SynclineError, type FieldDiff, type JsonValue } from '@syncline/contracts';

/** An RFC 6902 operation of the kinds a field diff produces. */
export type JsonPatchOperation =
  | { readonly op: 'add' | 'replace'; readonly path: string; readonly value: JsonValue }
  | { readonly op: 'remove'; readonly path: string };

const OPS = { added: 'add', modified: 'replace' } as const;

/**
 * The RFC 6902 JSON Patch equivalent of field changes: added → add, modified → replace,
 * removed → remove. Paths are already JSON Pointers, so they are passed through.
 */
export function toJsonPatch(changes: readonly FieldDiff[]): JsonPatchOperation[] {
  return changes.map((change): JsonPatchOperation => {
    if (change.changeType === 'removed') return { op: 'remove', path: change.field };
    if (change.newValue === undefined) {
      throw new SynclineError(
        ErrorCode.VALIDATION_FAILED,
        `${change.changeType} change at "${change.field.slice(0, 80)}" has no newValue`,
      );
    }
    return { op: OPS[change.changeType], path: change.field, value: change.newValue };
  });
}
