export { OfflineQueue, type PendingMutation } from './offline-queue.js';
export { CursorStore } from './cursor-store.js';
