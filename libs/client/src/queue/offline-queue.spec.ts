import { describe, expect, it } from '@jest/globals';
import { MemoryStorage } from '../storage/memory-storage.js';
import type { KeyValueStorage } from '../storage/storage.js';
import { OfflineQueue, type PendingMutation } from './offline-queue.js';

const mutation = (n: number, entityId = 'task-1', op: PendingMutation['op'] = 'patch'): PendingMutation => ({
  mutationId: `web-a:${String(n).padStart(6, '0')}`,
  entityType: 'tasks',
  entityId,
  op,
  ...(op === 'delete' ? {} : { data: { title: `edit ${n}` } }),
  baseVersion: 0,
  vectorClock: { 'web-a': n },
  hlc: `001795567430146:${String(n).padStart(5, '0')}:web-a`,
  clientId: 'web-a',
  queuedAt: 1_795_567_430_146 + n,
});

const ids = (mutations: readonly PendingMutation[]): string[] => mutations.map((m) => m.mutationId);

/** Storage whose writes finish in reverse order of their start unless something serializes them. */
class SlowStorage extends MemoryStorage {
  private delay = 30;
  override async set(key: string, value: unknown): Promise<void> {
    this.delay = Math.max(0, this.delay - 10);
    await new Promise((resolve) => setTimeout(resolve, this.delay));
    await super.set(key, value);
  }
}

describe('OfflineQueue', () => {
  it('keeps enqueue order across a reopen, and continues it after', async () => {
    const storage = new MemoryStorage();
    const queue = await OfflineQueue.open(storage, 'app');
    for (const n of [3, 1, 2]) await queue.enqueue(mutation(n));

    const reopened = await OfflineQueue.open(storage, 'app');
    expect(ids(reopened.all())).toEqual(ids([mutation(3), mutation(1), mutation(2)]));
    expect(reopened.all()[0]).toEqual(mutation(3));
    await reopened.enqueue(mutation(0));

    const again = await OfflineQueue.open(storage, 'app');
    expect(ids(again.all())).toEqual(ids([mutation(3), mutation(1), mutation(2), mutation(0)]));
  });

  it('stores each mutation under <namespace>/queue/<16-digit sequence>', async () => {
    const storage = new MemoryStorage();
    const queue = await OfflineQueue.open(storage, 'app');
    await queue.enqueue(mutation(1));
    await queue.enqueue(mutation(2));
    expect(await storage.keys('app/queue/')).toEqual(['app/queue/0000000000000000', 'app/queue/0000000000000001']);
  });

  it('continues after the highest sequence still stored, so new mutations sort after the remaining ones', async () => {
    const storage = new MemoryStorage();
    const queue = await OfflineQueue.open(storage, 'app');
    for (const n of [1, 2, 3]) await queue.enqueue(mutation(n));
    await queue.remove(mutation(1).mutationId);
    await queue.remove(mutation(3).mutationId);
    const reopened = await OfflineQueue.open(storage, 'app');
    await reopened.enqueue(mutation(4));
    expect(await storage.keys('app/queue/')).toEqual(['app/queue/0000000000000001', 'app/queue/0000000000000002']);
    expect(ids(reopened.all())).toEqual(ids([mutation(2), mutation(4)]));
  });

  it('keeps queues of different namespaces apart', async () => {
    const storage = new MemoryStorage();
    const a = await OfflineQueue.open(storage, 'a');
    const ab = await OfflineQueue.open(storage, 'a/b');
    await a.enqueue(mutation(1));
    await ab.enqueue(mutation(2));
    expect(ids((await OfflineQueue.open(storage, 'a')).all())).toEqual(ids([mutation(1)]));
    expect(ids((await OfflineQueue.open(storage, 'a/b')).all())).toEqual(ids([mutation(2)]));
  });

  it('removes mutations, in memory and in storage', async () => {
    const storage = new MemoryStorage();
    const queue = await OfflineQueue.open(storage, 'app');
    for (const n of [1, 2, 3]) await queue.enqueue(mutation(n));
    expect(await queue.remove(mutation(2).mutationId)).toBe(true);
    expect(await queue.remove(mutation(2).mutationId)).toBe(false);
    expect(queue.has(mutation(2).mutationId)).toBe(false);
    expect(queue.size).toBe(2);
    expect(ids(queue.all())).toEqual(ids([mutation(1), mutation(3)]));
    expect(ids((await OfflineQueue.open(storage, 'app')).all())).toEqual(ids([mutation(1), mutation(3)]));
  });

  it('lists the mutations of one entity, oldest first', async () => {
    const queue = await OfflineQueue.open(new MemoryStorage(), 'app');
    await queue.enqueue(mutation(1, 'task-1'));
    await queue.enqueue(mutation(2, 'task-2'));
    await queue.enqueue(mutation(3, 'task-1', 'delete'));
    expect(ids(queue.forEntity('tasks', 'task-1'))).toEqual(ids([mutation(1), mutation(3)]));
    expect(queue.forEntity('notes', 'task-1')).toEqual([]);
  });

  it('persists un-awaited enqueues and removes in call order', async () => {
    const storage = new SlowStorage();
    const queue = await OfflineQueue.open(storage, 'app');
    const operations = [
      queue.enqueue(mutation(1)),
      queue.enqueue(mutation(2)),
      queue.enqueue(mutation(3)),
      queue.remove(mutation(2).mutationId),
      queue.enqueue(mutation(4)),
    ];
    // Reads see the changes before the writes land.
    expect(ids(queue.all())).toEqual(ids([mutation(1), mutation(3), mutation(4)]));
    await Promise.all(operations);
    expect(ids((await OfflineQueue.open(storage, 'app')).all())).toEqual(ids([mutation(1), mutation(3), mutation(4)]));
  });

  it('refuses a mutation id already queued', async () => {
    const queue = await OfflineQueue.open(new MemoryStorage(), 'app');
    await queue.enqueue(mutation(1));
    await expect(queue.enqueue({ ...mutation(1), entityId: 'other' })).rejects.toThrow(/already queued/);
    expect(queue.all()).toEqual([mutation(1)]);
  });

  it('takes a mutation back out when persisting it fails', async () => {
    const storage = new MemoryStorage();
    const failing: KeyValueStorage = {
      get: (key) => storage.get(key),
      keys: (prefix) => storage.keys(prefix),
      delete: (key) => storage.delete(key),
      set: () => Promise.reject(new Error('disk full')),
    };
    const queue = await OfflineQueue.open(failing, 'app');
    await expect(queue.enqueue(mutation(1))).rejects.toThrow('disk full');
    expect(queue.size).toBe(0);
  });

  it('clears everything, including entries it could not read', async () => {
    const storage = new MemoryStorage();
    await storage.set('app/queue/0000000000000007', 'not a mutation');
    const queue = await OfflineQueue.open(storage, 'app');
    expect(queue.size).toBe(0);
    await queue.enqueue(mutation(1));
    expect(await storage.keys('app/queue/')).toEqual(['app/queue/0000000000000007', 'app/queue/0000000000000008']);
    await queue.clear();
    expect(queue.size).toBe(0);
    expect(await storage.keys('app/queue/')).toEqual([]);
  });

  it('returns a stable snapshot from all() until the queue changes', async () => {
    const queue = await OfflineQueue.open(new MemoryStorage(), 'app');
    await queue.enqueue(mutation(1));
    const snapshot = queue.all();
    expect(queue.all()).toBe(snapshot);
    await queue.enqueue(mutation(2));
    expect(snapshot).toHaveLength(1);
    expect(queue.all()).toHaveLength(2);
  });
});
