import { describe, expect, it } from '@jest/globals';
import { MemoryStorage } from '../storage/memory-storage.js';
import { CursorStore } from './cursor-store.js';

describe('CursorStore', () => {
  it('keeps cursors per entity type across a reopen', async () => {
    const storage = new MemoryStorage();
    const cursors = await CursorStore.open(storage, 'app');
    await cursors.set('tasks', 'c-1');
    await cursors.set('notes', 'c-7');
    await cursors.set('tasks', 'c-2');
    expect(cursors.get('tasks')).toBe('c-2');

    const reopened = await CursorStore.open(storage, 'app');
    expect(reopened.all()).toEqual({ notes: 'c-7', tasks: 'c-2' });
    expect(await storage.get('app/cursors/tasks')).toBe('c-2');
  });

  it('deletes a cursor', async () => {
    const storage = new MemoryStorage();
    const cursors = await CursorStore.open(storage, 'app');
    await cursors.set('tasks', 'c-1');
    await cursors.delete('tasks');
    expect(cursors.get('tasks')).toBeUndefined();
    expect((await CursorStore.open(storage, 'app')).all()).toEqual({});
  });

  it('persists un-awaited changes in call order', async () => {
    const storage = new MemoryStorage();
    const cursors = await CursorStore.open(storage, 'app');
    await Promise.all([cursors.set('tasks', 'c-1'), cursors.delete('tasks'), cursors.set('tasks', 'c-3')]);
    expect((await CursorStore.open(storage, 'app')).get('tasks')).toBe('c-3');
  });

  it('keeps namespaces apart and hands out copies', async () => {
    const storage = new MemoryStorage();
    const a = await CursorStore.open(storage, 'a');
    await a.set('tasks', 'c-1');
    const b = await CursorStore.open(storage, 'b');
    expect(b.all()).toEqual({});
    const all = a.all();
    all['tasks'] = 'changed';
    expect(a.get('tasks')).toBe('c-1');
  });
});
