/**
 * @jest-environment jsdom
 */
import { describe, expect, it } from '@jest/globals';
import { act, render, renderHook, waitFor } from '@testing-library/react';
import { createElement, type ReactNode } from 'react';
import type { WebSocketFactory } from '../connection/transport.js';
import { SyncManager } from '../manager/sync-manager.js';
import type { DifferentialSyncClientOptions } from '../options.js';
import { MemoryStorage } from '../storage/memory-storage.js';
import {
  SyncManagerProvider,
  useAutoRefresh,
  useConnectionHealth,
  useDifferentialSync,
  useDifferentialSyncEntity,
  useEntitySync,
  useFieldChange,
  useSyncManager,
} from './index.js';

/*
 * The hooks over a client that works offline: local changes take the same path through the
 * client and the manager as remote ones (the end-to-end and browser tests cover those).
 */

const noNetwork: WebSocketFactory = () => {
  throw new Error('offline in this test');
};

function clientOptions(clientId = 'tab-1', storage = new MemoryStorage()): DifferentialSyncClientOptions {
  return {
    clientId,
    websocketUrl: 'ws://127.0.0.1:9/ws',
    entityTypes: ['orders'],
    token: 'token',
    storage,
    webSocketFactory: noNetwork,
    autoReconnect: false,
  };
}

function offlineManager(storage = new MemoryStorage()): SyncManager {
  return new SyncManager({ client: clientOptions('tab-1', storage), config: { workOffline: true } });
}

function withProvider(manager: SyncManager) {
  return ({ children }: { children?: ReactNode }) => createElement(SyncManagerProvider, { manager }, children);
}

/** Renders a hook under a provider and lets the provider's start() (loading saved state) finish. */
async function mount<T>(hook: () => T, manager: SyncManager) {
  const rendered = renderHook(hook, { wrapper: withProvider(manager) });
  await act(() => new Promise((resolve) => setTimeout(resolve, 10)));
  return rendered;
}

describe('React hooks', () => {
  it('useDifferentialSyncEntity renders the optimistic state and re-renders on a change', async () => {
    const manager = offlineManager();
    const { result } = await mount(() => useDifferentialSyncEntity('orders'), manager);
    expect(result.current[0]).toEqual({});

    await act(() => result.current[1].update('o-1', { stage: 'new', total: 12 }));
    expect(result.current[0]).toEqual({ 'o-1': { stage: 'new', total: 12 } });
    await act(() => result.current[1].update('o-1', { total: null }));
    expect(result.current[0]).toEqual({ 'o-1': { stage: 'new' } });
    await act(() => result.current[1].remove('o-1'));
    expect(result.current[0]).toEqual({});
    await manager.stop();
  });

  it('renders once per change, and not at all for a change to another type', async () => {
    const manager = offlineManager();
    let renders = 0;
    const { result } = await mount(() => {
      renders += 1;
      return useDifferentialSyncEntity('orders');
    }, manager);
    const before = renders;
    const entities = result.current[0];
    await act(() => manager.client.updateLocalState({ x: { n: 1 } }, 'invoices'));
    expect(result.current[0]).toBe(entities);
    await act(() => result.current[1].update('o-1', { stage: 'new' }));
    expect(renders - before).toBeLessThanOrEqual(3); // the invoice event, the order change; never a loop
    await manager.stop();
  });

  it('useFieldChange reports a field taking a new value, with the values before and after', async () => {
    const manager = offlineManager();
    const calls: Array<[string, unknown, unknown]> = [];
    await mount(
      () =>
        useFieldChange('orders', 'o-1', 'stage', (event, previous, next) => calls.push([event.source, previous, next])),
      manager,
    );
    await act(() => manager.client.updateLocalState({ 'o-1': { stage: 'new', note: 'a' } }, 'orders'));
    await act(() => manager.client.updateLocalState({ 'o-1': { note: 'b' } }, 'orders')); // another field
    await act(() => manager.client.updateLocalState({ 'o-2': { stage: 'packed' } }, 'orders')); // another order
    await act(() => manager.client.updateLocalState({ 'o-1': { stage: 'packed' } }, 'orders'));
    expect(calls).toEqual([
      ['local', undefined, 'new'],
      ['local', 'new', 'packed'],
    ]);
    await manager.stop();
  });

  it('useEntitySync gives one entity with its own events and calls onEvent for each', async () => {
    const manager = offlineManager();
    const seen: string[] = [];
    const { result } = await mount(() => useEntitySync('orders', 'o-1', (event) => seen.push(event.message)), manager);
    expect(result.current.state).toBeNull();
    await act(() => manager.client.updateLocalState({ 'o-1': { stage: 'new' }, 'o-2': { stage: 'new' } }, 'orders'));
    await act(() => manager.client.updateLocalState({ 'o-1': { stage: 'packed' } }, 'orders'));
    expect(result.current.state).toEqual({ stage: 'packed' });
    expect(result.current.events.map((event) => event.message)).toEqual([
      'orders/o-1: stage → "packed" (local)',
      'orders/o-1 created (local)',
    ]);
    expect(result.current.latestEvent).toBe(result.current.events[0]);
    expect(seen).toEqual(['orders/o-1 created (local)', 'orders/o-1: stage → "packed" (local)']);
    await manager.stop();
  });

  it('useAutoRefresh refreshes once after a burst of changes has settled', async () => {
    const manager = offlineManager();
    let refreshes = 0;
    await mount(
      () => useAutoRefresh('orders', undefined, () => (refreshes += 1), { debounceMs: 30, sources: ['local'] }),
      manager,
    );
    await act(async () => {
      for (let i = 0; i < 5; i++) await manager.client.updateLocalState({ [`o-${i}`]: { n: i } }, 'orders');
    });
    expect(refreshes).toBe(0);
    await waitFor(() => expect(refreshes).toBe(1));
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(refreshes).toBe(1);
    await manager.stop();
  });

  it('useSyncManager and useConnectionHealth show state, pending changes, events and configuration', async () => {
    const storage = new MemoryStorage();
    const manager = offlineManager(storage);
    const { result } = await mount(() => ({ sync: useSyncManager(), health: useConnectionHealth() }), manager);
    await waitFor(() => expect(result.current.sync.config.workOffline).toBe(true));
    await act(() => manager.client.updateLocalState({ 'o-1': { stage: 'new' } }, 'orders'));
    expect(result.current.health).toMatchObject({
      isConnected: false,
      connectionState: 'disconnected',
      pendingChanges: 1,
    });
    expect(result.current.health.status).toBe('offline');
    expect(result.current.health.recommendations.length).toBeGreaterThan(0);
    expect(result.current.sync.recentEvents[0]?.message).toBe('orders/o-1 created (local)');
    await act(async () => result.current.sync.setConfig({ historyLimit: 5 }));
    expect(result.current.sync.config.historyLimit).toBe(5);
    await manager.stop();

    // A reload: a new manager over the same storage shows what the last one saved.
    const reloaded = offlineManager(storage);
    const again = await mount(() => useSyncManager(), reloaded);
    await waitFor(() => expect(again.result.current.config.historyLimit).toBe(5));
    expect(again.result.current.recentEvents[0]?.message).toBe('orders/o-1 created (local)');
    expect(again.result.current.metrics.pendingChanges).toBe(1);
    await reloaded.stop();
  });

  it('useDifferentialSync owns a client when given options, and stops it on unmount', async () => {
    const options = clientOptions('standalone');
    function Counter(): ReactNode {
      const [state, actions] = useDifferentialSync(options);
      return createElement(
        'button',
        { onClick: () => void actions.updateLocalState({ [`o-${Date.now()}`]: { stage: 'new' } }, 'orders') },
        `${Object.keys(state.entities.orders ?? {}).length} orders, ${state.pendingChanges} pending, ${state.connectionState}`,
      );
    }
    const view = render(createElement(Counter));
    const button = await view.findByRole('button');
    act(() => button.click());
    await waitFor(() => expect(button.textContent).toMatch(/^1 orders, 1 pending, /));
    view.unmount();
  });

  it('a hook outside a provider and without options says what it needs', () => {
    expect(() => renderHook(() => useSyncManager())).toThrow(/SyncManagerProvider/);
  });
});
