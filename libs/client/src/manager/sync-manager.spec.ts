import { describe, expect, it } from '@jest/globals';
import type { WebSocketFactory } from '../connection/transport.js';
import type { DifferentialSyncClientOptions } from '../options.js';
import { MemoryStorage } from '../storage/memory-storage.js';
import { SyncManager } from './sync-manager.js';

/** A transport that never opens: these tests are about the manager's bookkeeping while offline. */
function unreachable(): { factory: WebSocketFactory; attempts: () => number } {
  let attempts = 0;
  const factory: WebSocketFactory = () => {
    attempts += 1;
    throw new Error('no network in this test');
  };
  return { factory, attempts: () => attempts };
}

function options(storage: MemoryStorage, factory: WebSocketFactory): DifferentialSyncClientOptions {
  return {
    clientId: 'tablet-1',
    websocketUrl: 'ws://127.0.0.1:9/ws',
    entityTypes: ['orders'],
    token: 'token',
    storage,
    webSocketFactory: factory,
    autoReconnect: false,
  };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('SyncManager', () => {
  it('keeps snapshots and entity states identical until something changes, then replaces them', async () => {
    const manager = new SyncManager({
      client: options(new MemoryStorage(), unreachable().factory),
      config: { workOffline: true },
    });
    await manager.start();
    const snapshot = manager.getSnapshot();
    const orders = manager.getEntities('orders');
    expect(manager.getSnapshot()).toBe(snapshot);
    expect(manager.getEntities('orders')).toBe(orders);

    await manager.client.updateLocalState({ 'o-1': { stage: 'new' } }, 'orders');
    expect(manager.getEntities('orders')).not.toBe(orders);
    expect(manager.getEntities('orders')).toEqual({ 'o-1': { stage: 'new' } });
    expect(manager.getSnapshot()).not.toBe(snapshot);
    expect(manager.getSnapshot().metrics.pendingChanges).toBe(1);
    await manager.stop();
  });

  it('notifies once for all the changes made in one go', async () => {
    const manager = new SyncManager({
      client: options(new MemoryStorage(), unreachable().factory),
      config: { workOffline: true },
    });
    await manager.start();
    await settle();
    let notifications = 0;
    manager.watch(() => (notifications += 1));
    manager.setConfig({ historyLimit: 10 });
    manager.setConfig({ historyLimit: 20 });
    manager.clearHistory();
    await settle();
    expect(notifications).toBe(1);
    expect(manager.getSnapshot().config.historyLimit).toBe(20);
    await manager.stop();
  });

  it('records changes with the fields they touched, newest first, within the history limit', async () => {
    const manager = new SyncManager({
      client: options(new MemoryStorage(), unreachable().factory),
      config: { workOffline: true, historyLimit: 3 },
    });
    await manager.start();
    const seen: string[] = [];
    manager.onEvent((event) => seen.push(event.message));
    await manager.client.updateLocalState({ 'o-1': { stage: 'new', note: 'rush' } }, 'orders');
    await manager.client.updateLocalState({ 'o-1': { stage: 'packed' } }, 'orders');

    const [latest, created] = manager.getSnapshot().recentEvents;
    expect(latest).toMatchObject({ kind: 'change', entityId: 'o-1', source: 'local', fields: ['stage'] });
    expect(latest?.message).toBe('orders/o-1: stage → "packed" (local)');
    expect(created?.message).toBe('orders/o-1 created (local)');
    expect(seen).toEqual([created?.message, latest?.message]);

    for (let i = 0; i < 5; i++) await manager.client.updateLocalState({ [`o-${i + 2}`]: { n: i } }, 'orders');
    expect(manager.getSnapshot().recentEvents.map((event) => event.entityId)).toEqual(['o-6', 'o-5', 'o-4']);
    await manager.stop();
  });

  it('keeps recent events, metrics and configuration across a reload', async () => {
    const storage = new MemoryStorage();
    const network = unreachable();
    const first = new SyncManager({ client: options(storage, network.factory), config: { historyLimit: 50 } });
    await first.disconnect(); // the user chose to work offline
    await first.client.updateLocalState({ 'o-1': { stage: 'new' } }, 'orders');
    const before = first.getSnapshot();
    await first.stop();

    const second = new SyncManager({ client: options(storage, network.factory) });
    await second.start();
    const after = second.getSnapshot();
    expect(after.config).toEqual({ workOffline: true, historyLimit: 50 });
    expect(network.attempts()).toBe(0); // it stayed offline, as configured
    expect(after.recentEvents.map((event) => event.seq)).toEqual(before.recentEvents.map((event) => event.seq));
    expect(after.metrics.pendingChanges).toBe(1);
    expect(second.getEntities('orders')).toEqual({ 'o-1': { stage: 'new' } }); // restored with the queue

    await second.client.updateLocalState({ 'o-1': { stage: 'packed' } }, 'orders');
    const newest = second.getSnapshot().recentEvents[0];
    expect(newest?.seq).toBeGreaterThan(Math.max(...before.recentEvents.map((event) => event.seq)));
    await second.stop();
  });

  it('connects on start unless configured to work offline, and connect() clears that setting', async () => {
    const network = unreachable();
    const manager = new SyncManager({
      client: options(new MemoryStorage(), network.factory),
      config: { workOffline: true },
    });
    await manager.start();
    expect(network.attempts()).toBe(0);
    await expect(manager.connect()).rejects.toThrow();
    expect(network.attempts()).toBe(1);
    expect(manager.getSnapshot().config.workOffline).toBe(false);
    await manager.stop();
  });
});
