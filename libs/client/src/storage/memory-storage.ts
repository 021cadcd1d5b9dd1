import { keysWithPrefix, toJsonText } from './json-values.js';
import type { KeyValueStorage } from './storage.js';

/**
 * Storage that lasts as long as the process or page: the default, and the one for tests.
 * Values are kept as JSON text, so every `get` parses a fresh copy and a caller changing what it
 * passed to `set` (or got from `get`) can never change the stored state.
 */
export class MemoryStorage implements KeyValueStorage {
  private readonly values = new Map<string, string>();

  async get<T>(key: string): Promise<T | undefined> {
    const text = this.values.get(key);
    return text === undefined ? undefined : (JSON.parse(text) as T);
  }

  async set(key: string, value: unknown): Promise<void> {
    this.values.set(key, toJsonText(value));
  }

  async delete(key: string): Promise<void> {
    this.values.delete(key);
  }

  async keys(prefix: string): Promise<string[]> {
    return keysWithPrefix(this.values.keys(), prefix);
  }
}
