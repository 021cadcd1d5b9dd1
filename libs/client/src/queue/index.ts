export { OfflineQueue, type PendingMutation } from './offline-queue.js';
