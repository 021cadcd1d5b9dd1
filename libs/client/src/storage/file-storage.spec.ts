import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStorage } from './file-storage.js';

describe('FileStorage', () => {
  let directory = '';
  let path = '';
  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), `syncline-file-storage-${Math.random().toString(36).slice(2)}-`));
    path = join(directory, 'client.json');
  });
  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('starts empty when the file does not exist, creating missing directories', async () => {
    const nested = join(directory, 'a', 'b', 'client.json');
    const storage = await FileStorage.open(nested);
    expect(await storage.keys('')).toEqual([]);
    await storage.set('k', 1);
    expect(JSON.parse(await readFile(nested, 'utf8'))).toEqual({ k: 1 });
  });

  it('survives a restart: a new instance reads what the old one wrote', async () => {
    const before = await FileStorage.open(path);
    await before.set('ns/queue/0000000000000000', { mutationId: 'm-1' });
    await before.set('ns/cursors/tasks', 'c-9');
    await before.set('gone', true);
    await before.delete('gone');
    // No close(): an awaited write is on disk even if the process dies right after.
    const after = await FileStorage.open(path);
    expect(await after.keys('')).toEqual(['ns/cursors/tasks', 'ns/queue/0000000000000000']);
    expect(await after.get('ns/queue/0000000000000000')).toEqual({ mutationId: 'm-1' });
  });

  it('persists every one of many concurrent writes and leaves no temporary file behind', async () => {
    const storage = await FileStorage.open(path);
    const writes = Array.from({ length: 50 }, (_, i) => storage.set(`k/${String(i).padStart(2, '0')}`, i));
    await Promise.all(writes);
    expect(await readdir(directory)).toEqual(['client.json']);
    const reopened = await FileStorage.open(path);
    expect(await reopened.keys('k/')).toHaveLength(50);
    expect(await reopened.get('k/49')).toBe(49);
  });

  it('ignores a temporary file left by a crash during a write', async () => {
    const storage = await FileStorage.open(path);
    await storage.set('k', 'committed');
    await writeFile(`${path}.tmp-${process.pid}`, '{"k": "torn wri');
    expect(await (await FileStorage.open(path)).get('k')).toBe('committed');
    await storage.set('k', 'next');
    expect(await readdir(directory)).toEqual(['client.json']);
  });

  it('lets an instance reopened in the same process see writes still under way', async () => {
    const first = await FileStorage.open(path);
    const pending = first.set('k', 'latest');
    const second = await FileStorage.open(path);
    await pending;
    expect(await second.get('k')).toBe('latest');
  });

  it('rejects a failed write, and a later write still saves every change', async () => {
    const storage = await FileStorage.open(path);
    await rm(directory, { recursive: true });
    await expect(storage.set('a', 1)).rejects.toThrow(/ENOENT/);
    await mkdir(directory);
    await storage.set('b', 2);
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ a: 1, b: 2 });
  });

  it('refuses writes after close, once pending writes are flushed', async () => {
    const storage = await FileStorage.open(path);
    const pending = storage.set('k', 1);
    await storage.close();
    await pending;
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ k: 1 });
    await expect(storage.set('k', 2)).rejects.toThrow(/closed/);
  });

  it('refuses to open a file that is not a JSON object', async () => {
    await writeFile(path, '[1, 2]');
    await expect(FileStorage.open(path)).rejects.toThrow(/expected a JSON object/);
  });
});
