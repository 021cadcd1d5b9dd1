import { cloneJson } from './json-values.js';
import type { KeyValueStorage } from './storage.js';

/*
 * The parts of the IndexedDB API this adapter uses, declared structurally instead of taken from
 * the DOM types: the browser's `indexedDB` and fake-indexeddb's `IDBFactory` both fit, and the
 * module type-checks without the DOM library. Events are listened to with `addEventListener`,
 * whose (bivariant) method signature the DOM's overloads satisfy.
 */

interface IdbEventTargetLike {
  addEventListener(type: string, listener: () => void): void;
}

interface IdbRequestLike<T> extends IdbEventTargetLike {
  readonly result: T;
  readonly error: unknown;
}

/** What `IDBKeyRange.bound` returns: opaque here, only ever handed back to the store. */
type IdbKeyRangeLike = unknown;

interface IdbObjectStoreLike {
  get(key: string): IdbRequestLike<unknown>;
  put(value: unknown, key: string): IdbRequestLike<unknown>;
  delete(key: string): IdbRequestLike<unknown>;
  getAllKeys(range: IdbKeyRangeLike): IdbRequestLike<unknown[]>;
}

interface IdbTransactionLike extends IdbEventTargetLike {
  readonly error: unknown;
  objectStore(name: string): IdbObjectStoreLike;
}

interface IdbDatabaseLike extends IdbEventTargetLike {
  readonly objectStoreNames: { contains(name: string): boolean };
  createObjectStore(name: string): unknown;
  transaction(storeName: string, mode: 'readonly' | 'readwrite'): IdbTransactionLike;
  close(): void;
}

/** `indexedDB` (an `IDBFactory`). */
export interface IdbFactoryLike {
  open(name: string, version: number): IdbRequestLike<IdbDatabaseLike>;
}

/** `IDBKeyRange` (the constructor, for its static `bound`). */
export interface IdbKeyRangeFactoryLike {
  bound(lower: string, upper: string): IdbKeyRangeLike;
}

const STORE = 'kv';
/** Bump, with an upgrade step in {@link upgrade}, when the object store layout changes. */
const SCHEMA_VERSION = 1;
/**
 * The upper end of a prefix range: U+FFFF is the largest UTF-16 code unit and a noncharacter,
 * so every real key starting with the prefix sorts at or below `prefix + '\uffff'`.
 */
const RANGE_END = '\uffff';

/**
 * Storage in an IndexedDB database (browsers): one object store with string keys, values stored
 * as structured clones of their JSON form. Writes resolve once their transaction has committed.
 * Each instance should get its own database name; {@link close} releases the connection.
 */
export class IndexedDbStorage implements KeyValueStorage {
  private constructor(
    private readonly db: IdbDatabaseLike,
    private readonly keyRange: IdbKeyRangeFactoryLike,
  ) {
    // Another tab upgrading or deleting the database waits for every connection to close: let it.
    db.addEventListener('versionchange', () => db.close());
  }

  /**
   * Opens (creating if needed) the database `dbName`. `factory` and `keyRange` default to the
   * environment's `indexedDB` and `IDBKeyRange`; pass both from the same implementation.
   */
  static async open(
    dbName: string,
    factory: IdbFactoryLike | undefined = globalIndexedDb(),
    keyRange: IdbKeyRangeFactoryLike | undefined = globalKeyRange(),
  ): Promise<IndexedDbStorage> {
    if (!factory || !keyRange) {
      throw new Error('IndexedDbStorage: no IndexedDB here; pass an IDBFactory and IDBKeyRange');
    }
    const request = factory.open(dbName, SCHEMA_VERSION);
    request.addEventListener('upgradeneeded', () => upgrade(request.result));
    return new IndexedDbStorage(await settled(request), keyRange);
  }

  async get<T>(key: string): Promise<T | undefined> {
    const value = await settled(this.store('readonly').get(key));
    return value as T | undefined;
  }

  async set(key: string, value: unknown): Promise<void> {
    // Through JSON first, so what is stored is what every other adapter would store.
    const json = cloneJson<unknown>(value);
    await this.write((store) => store.put(json, key));
  }

  async delete(key: string): Promise<void> {
    await this.write((store) => store.delete(key));
  }

  async keys(prefix: string): Promise<string[]> {
    const range = this.keyRange.bound(prefix, prefix + RANGE_END);
    const keys = await settled(this.store('readonly').getAllKeys(range));
    return keys.filter((key): key is string => typeof key === 'string');
  }

  async close(): Promise<void> {
    this.db.close();
  }

  private store(mode: 'readonly' | 'readwrite'): IdbObjectStoreLike {
    return this.db.transaction(STORE, mode).objectStore(STORE);
  }

  /** Runs one write in its own transaction and resolves when that transaction has committed. */
  private write(operation: (store: IdbObjectStoreLike) => unknown): Promise<void> {
    const transaction = this.db.transaction(STORE, 'readwrite');
    const done = committed(transaction);
    operation(transaction.objectStore(STORE));
    return done;
  }
}

function upgrade(db: IdbDatabaseLike): void {
  if (!db.objectStoreNames.contains(STORE)) db.createObjectStore(STORE);
}

/** The result of a request, or its error. */
function settled<T>(request: IdbRequestLike<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    request.addEventListener('success', () => resolve(request.result));
    request.addEventListener('error', () => reject(asError(request.error, 'IndexedDB request failed')));
  });
}

/** Resolves when a transaction commits; rejects when it fails or is aborted. */
function committed(transaction: IdbTransactionLike): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    transaction.addEventListener('complete', () => resolve());
    transaction.addEventListener('error', () => reject(asError(transaction.error, 'IndexedDB transaction failed')));
    transaction.addEventListener('abort', () => reject(asError(transaction.error, 'IndexedDB transaction aborted')));
  });
}

function asError(error: unknown, fallback: string): Error {
  return error instanceof Error ? error : new Error(fallback);
}

function globalIndexedDb(): IdbFactoryLike | undefined {
  return (globalThis as { indexedDB?: IdbFactoryLike }).indexedDB;
}

function globalKeyRange(): IdbKeyRangeFactoryLike | undefined {
  return (globalThis as { IDBKeyRange?: IdbKeyRangeFactoryLike }).IDBKeyRange;
}
