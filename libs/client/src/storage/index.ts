// Browser-safe adapters only: `FileStorage` needs Node and is exported from `@syncline/client/node`.
export type { KeyValueStorage } from './storage.js';
export { MemoryStorage } from './memory-storage.js';
export { LocalStorageStorage, type WebStorageLike } from './local-storage.js';
export { IndexedDbStorage, type IdbFactoryLike, type IdbKeyRangeFactoryLike } from './indexed-db-storage.js';
