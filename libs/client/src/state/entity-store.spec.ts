import { describe, expect, it } from '@jest/globals';
import type { DeltaPayload } from '@syncline/contracts';
import type { PendingMutation } from '../queue/offline-queue.js';
import { EntityStore } from './entity-store.js';

const delta = (entityId: string, version: number, changes: DeltaPayload['changes'], deleted = false): DeltaPayload => ({
  entityType: 'orders',
  entityId,
  version,
  op: deleted ? 'delete' : 'patch',
  deleted,
  changes,
  vectorClock: { s: version },
  timestamp: '000000000000001:00000:s',
});

const set = (field: string, newValue: unknown) => ({
  field,
  changeType: 'modified' as const,
  newValue: newValue as never,
  timestamp: 't',
});

const mutation = (
  entityId: string,
  data: PendingMutation['data'] | null,
  id = `m-${Math.random()}`,
): PendingMutation => ({
  mutationId: id,
  entityType: 'orders',
  entityId,
  op: data === null ? 'delete' : 'patch',
  ...(data === null || data === undefined ? {} : { data }),
  baseVersion: 0,
  vectorClock: { c: 1 },
  hlc: '000000000000001:00000:c',
  clientId: 'c',
  queuedAt: 0,
});

describe('EntityStore', () => {
  it('applies versions in order and ignores repeats', () => {
    const store = new EntityStore('orders');
    expect(store.applyDelta(delta('o', 1, [set('/stage', 'new')]))).toBe('applied');
    expect(store.applyDelta(delta('o', 1, [set('/stage', 'other')]))).toBe('duplicate');
    expect(store.get('o')).toMatchObject({ version: 1, data: { stage: 'new' } });
  });

  it('holds a version that arrives early until the missing one fills the gap', () => {
    const store = new EntityStore('orders');
    store.applyDelta(delta('o', 1, [set('/n', 1)]));
    expect(store.applyDelta(delta('o', 3, [set('/n', 3)]))).toBe('gap');
    expect(store.gaps()).toEqual(['o']);
    expect(store.applyDelta(delta('o', 2, [set('/n', 2)]))).toBe('applied');
    expect(store.get('o')).toMatchObject({ version: 3, data: { n: 3 } });
    expect(store.gaps()).toEqual([]);
  });

  it('shows pending mutations on top of the confirmed state, in order', () => {
    const store = new EntityStore('orders');
    store.applyDelta(delta('o', 1, [set('/a', 1), set('/b', 1)]));
    const pending = [mutation('o', { a: 2 }), mutation('o', { c: 3 }), mutation('p', { x: 1 })];
    expect(store.view(pending)).toEqual({ o: { a: 2, b: 1, c: 3 }, p: { x: 1 } });
    expect(store.view([mutation('o', null)])).toEqual({});
  });

  it('rebases: a newer server state shows through under the same pending mutation', () => {
    const store = new EntityStore('orders');
    store.applyDelta(delta('o', 1, [set('/a', 1)]));
    const pending = [mutation('o', { b: 2 })];
    store.applyDelta(delta('o', 2, [set('/a', 9)]));
    expect(store.view(pending)).toEqual({ o: { a: 9, b: 2 } });
  });

  it('applies the client own mutation at the version the server gave it', () => {
    const store = new EntityStore('orders');
    store.applyDelta(delta('o', 1, [set('/a', 1)]));
    const own = mutation('o', { b: 2 });
    expect(store.applyOwn(own, 2, { c: 1, s: 1 })).toBe('applied');
    expect(store.get('o')).toEqual({ version: 2, data: { a: 1, b: 2 }, vectorClock: { c: 1, s: 1 } });
    expect(store.applyOwn(own, 2, undefined)).toBe('duplicate');
  });

  it('never replaces a state with an older one', () => {
    const store = new EntityStore('orders');
    store.replace('o', { version: 5, data: { v: 5 }, vectorClock: {} });
    store.replace('o', { version: 4, data: { v: 4 }, vectorClock: {} });
    expect(store.get('o').data).toEqual({ v: 5 });
  });

  it('treats a deleting change as a tombstone', () => {
    const store = new EntityStore('orders');
    store.applyDelta(delta('o', 1, [set('/a', 1)]));
    store.applyDelta(delta('o', 2, [{ field: '/a', changeType: 'removed', oldValue: 1, timestamp: 't' }], true));
    expect(store.get('o')).toMatchObject({ version: 2, data: null });
    expect(store.view([])).toEqual({});
  });
});

describe('EntityStore with acks arriving before the versions below them', () => {
  it('holds the own applied version until the missing delta arrives', () => {
    const store = new EntityStore('orders');
    store.applyDelta(delta('o', 1, [set('/stage', 'new'), set('/qty', 1)]));
    expect(store.applyOwn(mutation('o', { qty: 3 }), 3, undefined)).toBe('gap');
    store.applyDelta(delta('o', 2, [set('/stage', 'packed')]));
    expect(store.get('o')).toMatchObject({ version: 3, data: { stage: 'packed', qty: 3 } });
    expect(store.gaps()).toEqual([]);
  });
});
