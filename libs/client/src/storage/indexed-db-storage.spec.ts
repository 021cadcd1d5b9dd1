import 'fake-indexeddb/auto';
import { describe, expect, it } from '@jest/globals';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { IndexedDbStorage, type IdbFactoryLike } from './indexed-db-storage.js';

const name = (): string => `syncline-${Math.random().toString(36).slice(2)}`;

describe('IndexedDbStorage', () => {
  it('uses the global indexedDB and IDBKeyRange by default', async () => {
    const storage = await IndexedDbStorage.open(name());
    await storage.set('a/1', { v: 1 });
    expect(await storage.keys('a/')).toEqual(['a/1']);
    await storage.close();
  });

  it('keeps data across close and reopen of the same database', async () => {
    const factory = new IDBFactory();
    const dbName = name();
    const first = await IndexedDbStorage.open(dbName, factory, IDBKeyRange);
    await first.set('ns/queue/0001', { op: 'delete' });
    await first.close();
    const second = await IndexedDbStorage.open(dbName, factory, IDBKeyRange);
    expect(await second.get('ns/queue/0001')).toEqual({ op: 'delete' });
    await second.close();
  });

  it('fails operations after close', async () => {
    const storage = await IndexedDbStorage.open(name());
    await storage.close();
    await expect(storage.get('k')).rejects.toThrow();
    await expect(storage.set('k', 1)).rejects.toThrow();
  });

  it('lets another tab delete the database instead of blocking it', async () => {
    const factory = new IDBFactory();
    const dbName = name();
    const storage = await IndexedDbStorage.open(dbName, factory, IDBKeyRange);
    await new Promise<void>((resolve, reject) => {
      const request = factory.deleteDatabase(dbName);
      request.onsuccess = () => resolve();
      request.onblocked = () => reject(new Error('blocked by the open connection'));
    });
    await expect(storage.get('k')).rejects.toThrow();
  });

  it('says so when there is no IndexedDB', async () => {
    const globals = globalThis as { indexedDB?: IdbFactoryLike };
    const saved = globals.indexedDB;
    delete globals.indexedDB;
    try {
      await expect(IndexedDbStorage.open(name())).rejects.toThrow(/no IndexedDB/);
    } finally {
      if (saved) globals.indexedDB = saved;
    }
  });
});
