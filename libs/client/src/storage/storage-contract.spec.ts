import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStorage } from './file-storage.js';
import { IndexedDbStorage } from './indexed-db-storage.js';
import { LocalStorageStorage, type WebStorageLike } from './local-storage.js';
import { MemoryStorage } from './memory-storage.js';
import type { KeyValueStorage } from './storage.js';

/** A Web Storage stand-in; it lists keys in insertion order, so sorting is the adapter's job. */
class FakeWebStorage implements WebStorageLike {
  private readonly items = new Map<string, string>();
  get length(): number {
    return this.items.size;
  }
  key(index: number): string | null {
    return [...this.items.keys()][index] ?? null;
  }
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.items.set(key, String(value));
  }
  removeItem(key: string): void {
    this.items.delete(key);
  }
}

let directory = '';
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'syncline-storage-contract-'));
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

let counter = 0;
const unique = (): string => `${(counter += 1)}-${Math.random().toString(36).slice(2)}`;

// One shared backend per adapter, so that "two instances are isolated" is tested where it matters:
// different prefixes in one Web Storage, different databases in one IndexedDB, different files.
const webStorage = new FakeWebStorage();
const indexedDb = new IDBFactory();

const adapters: ReadonlyArray<readonly [string, () => Promise<KeyValueStorage>]> = [
  ['MemoryStorage', async () => new MemoryStorage()],
  ['LocalStorageStorage', async () => new LocalStorageStorage(`app-${unique()}:`, webStorage)],
  ['IndexedDbStorage', () => IndexedDbStorage.open(`db-${unique()}`, indexedDb, IDBKeyRange)],
  ['FileStorage', () => FileStorage.open(join(directory, `${unique()}.json`))],
];

describe.each(adapters)('%s (KeyValueStorage contract)', (_name, create) => {
  const opened: KeyValueStorage[] = [];
  const open = async (): Promise<KeyValueStorage> => {
    const storage = await create();
    opened.push(storage);
    return storage;
  };
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((storage) => storage.close?.()));
  });

  it('returns undefined for a key never set', async () => {
    const storage = await open();
    expect(await storage.get('missing')).toBeUndefined();
  });

  it('round-trips JSON values of every kind', async () => {
    const storage = await open();
    const document = {
      text: 'héllo 😀 "quoted"\n',
      count: 42,
      ratio: -0.5,
      done: false,
      none: null,
      list: [1, 'two', { three: [3] }],
      nested: { deeper: { deepest: true } },
    };
    const values: ReadonlyArray<readonly [string, unknown]> = [
      ['object', document],
      ['string', 'plain'],
      ['number', 7],
      ['boolean', true],
      ['null', null],
      ['array', [document, []]],
    ];
    for (const [key, value] of values) await storage.set(key, value);
    for (const [key, value] of values) expect(await storage.get(key)).toEqual(value);
  });

  it('stores what JSON keeps: undefined members dropped, dates as ISO strings', async () => {
    const storage = await open();
    await storage.set('k', { kept: 1, dropped: undefined, at: new Date(0) });
    expect(await storage.get('k')).toStrictEqual({ kept: 1, at: '1970-01-01T00:00:00.000Z' });
  });

  it('refuses a value JSON cannot express', async () => {
    const storage = await open();
    await expect(storage.set('k', undefined)).rejects.toThrow(TypeError);
    expect(await storage.get('k')).toBeUndefined();
  });

  it('overwrites and deletes', async () => {
    const storage = await open();
    await storage.set('k', { v: 1 });
    await storage.set('k', { v: 2 });
    expect(await storage.get('k')).toEqual({ v: 2 });
    await storage.delete('k');
    expect(await storage.get('k')).toBeUndefined();
    expect(await storage.keys('')).toEqual([]);
    await expect(storage.delete('never-set')).resolves.toBeUndefined();
  });

  it('hands out copies: changing a value set or read never changes what is stored', async () => {
    const storage = await open();
    const value = { list: [1], inner: { n: 1 } };
    await storage.set('k', value);
    value.list.push(2);
    value.inner.n = 2;
    const read = await storage.get<typeof value>('k');
    read?.list.push(3);
    expect(await storage.get('k')).toEqual({ list: [1], inner: { n: 1 } });
  });

  it('lists the keys with a prefix, in lexicographic order', async () => {
    const storage = await open();
    for (const key of ['ns/queue/0002', 'ns/cursors/tasks', 'ns/queue/0010', 'other/queue/0001', 'ns/queue/0001']) {
      await storage.set(key, key);
    }
    await storage.set('ns/queue', 'the prefix itself minus the slash');
    expect(await storage.keys('ns/queue/')).toEqual(['ns/queue/0001', 'ns/queue/0002', 'ns/queue/0010']);
    expect(await storage.keys('ns/')).toEqual([
      'ns/cursors/tasks',
      'ns/queue',
      'ns/queue/0001',
      'ns/queue/0002',
      'ns/queue/0010',
    ]);
    expect(await storage.keys('ns/queue/0002')).toEqual(['ns/queue/0002']);
    expect(await storage.keys('nothing/')).toEqual([]);
    expect(await storage.keys('')).toHaveLength(6);
  });

  it('orders keys by UTF-16 code unit, like IndexedDB', async () => {
    const storage = await open();
    const keys = ['p/é', 'p/Z', 'p/a', 'p/😀', 'p/\u4e2d', 'p/10', 'p/9'];
    for (const key of keys) await storage.set(key, 1);
    expect(await storage.keys('p/')).toEqual(['p/10', 'p/9', 'p/Z', 'p/a', 'p/é', 'p/\u4e2d', 'p/😀']);
  });

  it('keeps separate instances apart', async () => {
    const first = await open();
    const second = await open();
    await first.set('shared/key', 'first');
    await second.set('shared/other', 'second');
    expect(await first.keys('')).toEqual(['shared/key']);
    expect(await second.keys('')).toEqual(['shared/other']);
    expect(await second.get('shared/key')).toBeUndefined();
    await second.delete('shared/key');
    expect(await first.get('shared/key')).toBe('first');
  });

  it('applies un-awaited writes in call order', async () => {
    const storage = await open();
    const writes = [storage.set('k', 1), storage.set('k', 2), storage.delete('k'), storage.set('k', 3)];
    await Promise.all(writes);
    expect(await storage.get('k')).toBe(3);
  });
});
