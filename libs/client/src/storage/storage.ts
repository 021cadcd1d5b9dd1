/**
 * Where the client keeps what must survive a reload or a restart: the offline queue of
 * mutations, cursors per entity type, and confirmed entity state. Values are JSON-serializable.
 * Implementations: memory, localStorage, IndexedDB (browsers), a file (Node).
 */
export interface KeyValueStorage {
  get<T>(key: string): Promise<T | undefined>;
  set(key: string, value: unknown): Promise<void>;
  delete(key: string): Promise<void>;
  /** Keys starting with `prefix`, in lexicographic order. */
  keys(prefix: string): Promise<string[]>;
  close?(): Promise<void>;
}
