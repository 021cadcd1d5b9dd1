import { afterEach, describe, expect, it } from '@jest/globals';
import { LocalStorageStorage, type WebStorageLike } from './local-storage.js';

/** The smallest Web Storage: keys listed in insertion order. */
function fakeWebStorage(items = new Map<string, string>()): WebStorageLike & { items: Map<string, string> } {
  return {
    items,
    get length() {
      return items.size;
    },
    key: (index) => [...items.keys()][index] ?? null,
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key),
  };
}

describe('LocalStorageStorage', () => {
  const globals = globalThis as { localStorage?: WebStorageLike };
  afterEach(() => {
    delete globals.localStorage;
  });

  it('stores JSON text under its prefix and leaves the rest of the origin alone', async () => {
    const web = fakeWebStorage(new Map([['theme', 'dark']]));
    const storage = new LocalStorageStorage('syncline:', web);
    await storage.set('ns/queue/1', { op: 'patch' });
    expect(web.items.get('syncline:ns/queue/1')).toBe('{"op":"patch"}');
    expect(await storage.keys('')).toEqual(['ns/queue/1']);
    await storage.delete('ns/queue/1');
    expect([...web.items]).toEqual([['theme', 'dark']]);
  });

  it('reads what an earlier page load wrote', async () => {
    const web = fakeWebStorage();
    await new LocalStorageStorage('app:', web).set('k', [1, 2]);
    expect(await new LocalStorageStorage('app:', web).get('k')).toEqual([1, 2]);
  });

  it('uses globalThis.localStorage by default', async () => {
    const web = fakeWebStorage();
    globals.localStorage = web;
    await new LocalStorageStorage('app:').set('k', true);
    expect(web.items.get('app:k')).toBe('true');
  });

  it('says so when there is no localStorage', () => {
    expect(() => new LocalStorageStorage('app:')).toThrow(/no localStorage/);
  });

  it('rejects when the origin is over its quota', async () => {
    const web = fakeWebStorage();
    web.setItem = () => {
      throw new Error('QuotaExceededError');
    };
    await expect(new LocalStorageStorage('app:', web).set('k', 'x'.repeat(10))).rejects.toThrow('QuotaExceededError');
  });
});
