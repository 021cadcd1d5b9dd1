import { keysWithPrefix, toJsonText } from './json-values.js';
import type { KeyValueStorage } from './storage.js';

/**
 * The part of the Web Storage API (`localStorage`, `sessionStorage`) this adapter uses. Declared
 * here rather than taken from the DOM types so that any object with this shape (a test fake, a
 * polyfill) fits, and the module type-checks without the DOM library.
 */
export interface WebStorageLike {
  readonly length: number;
  key(index: number): string | null;
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/**
 * Storage in `localStorage` (or any Web Storage–like object), each key stored under `prefix` so
 * several clients or apps can share one origin. Values are JSON text. Choose prefixes that are not
 * prefixes of one another (end them with a separator such as `:`), since the origin's keys are one
 * flat list. Writes that exceed the origin's quota reject with the browser's `QuotaExceededError`.
 */
export class LocalStorageStorage implements KeyValueStorage {
  private readonly storage: WebStorageLike;

  constructor(
    private readonly prefix: string,
    storage: WebStorageLike | undefined = globalLocalStorage(),
  ) {
    if (!storage) throw new Error('LocalStorageStorage: no localStorage here; pass a Web Storage object');
    this.storage = storage;
  }

  async get<T>(key: string): Promise<T | undefined> {
    const text = this.storage.getItem(this.prefix + key);
    return text === null ? undefined : (JSON.parse(text) as T);
  }

  async set(key: string, value: unknown): Promise<void> {
    this.storage.setItem(this.prefix + key, toJsonText(value));
  }

  async delete(key: string): Promise<void> {
    this.storage.removeItem(this.prefix + key);
  }

  async keys(prefix: string): Promise<string[]> {
    const own = keysWithPrefix(this.allStorageKeys(), this.prefix + prefix);
    return own.map((key) => key.slice(this.prefix.length));
  }

  /** Every key of the underlying storage; collected first because Web Storage is indexed by position. */
  private allStorageKeys(): string[] {
    const keys: string[] = [];
    for (let index = 0; index < this.storage.length; index += 1) {
      const key = this.storage.key(index);
      if (key !== null) keys.push(key);
    }
    return keys;
  }
}

/** `globalThis.localStorage` when the environment has one (browsers; not Node by default). */
function globalLocalStorage(): WebStorageLike | undefined {
  return (globalThis as { localStorage?: WebStorageLike }).localStorage;
}
