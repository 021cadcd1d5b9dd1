export type { ConflictInput, Resolution, Side } from './types.js';
export { resolveConflict } from './resolve.js';
export { mergeThreeWay } from './merge.js';
