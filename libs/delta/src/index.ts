export { diff, stampChanges } from './diff.js';
export { applyDiff } from './apply.js';
export { applyMergePatch } from './merge-patch.js';
export { toJsonPatch, type JsonPatchOperation } from './json-patch.js';
export { encodePointer, decodePointer } from './pointer.js';
export { jsonEqual } from './equal.js';
export { withValuesAt } from './values-at.js';
