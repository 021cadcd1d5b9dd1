import { ErrorCode, SynclineError } from '@syncline/contracts';

/** A `~` not followed by `0` or `1` is not a valid escape (RFC 6901 §3). */
const INVALID_ESCAPE = /~(?![01])/;

/** Escapes one reference token: `~` first, so the `~` introduced for `/` is not escaped again. */
function escapeSegment(segment: string): string {
  return segment.replaceAll('~', '~0').replaceAll('/', '~1');
}

/** Unescapes one reference token: `~1` first, so `~01` becomes `~1` and not `/` (RFC 6901 §4). */
function unescapeSegment(segment: string): string {
  return segment.replaceAll('~1', '/').replaceAll('~0', '~');
}

/** The RFC 6901 JSON Pointer for a path of object keys; `[]` is the whole document, `""`. */
export function encodePointer(segments: readonly string[]): string {
  return segments.map((segment) => `/${escapeSegment(segment)}`).join('');
}

/** The object keys a JSON Pointer names, throwing `VALIDATION_FAILED` on a malformed pointer. */
export function decodePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) {
    throw new SynclineError(
      ErrorCode.VALIDATION_FAILED,
      `JSON Pointer "${pointer.slice(0, 80)}" must be "" or start with "/"`,
    );
  }
  if (INVALID_ESCAPE.test(pointer)) {
    throw new SynclineError(
      ErrorCode.VALIDATION_FAILED,
      `JSON Pointer "${pointer.slice(0, 80)}" has a "~" not followed by 0 or 1`,
    );
  }
  return pointer.slice(1).split('/').map(unescapeSegment);
}
