import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { cloneJson, keysWithPrefix } from './json-values.js';
import type { KeyValueStorage } from './storage.js';

/**
 * The write chain of each file, shared by every `FileStorage` of this process: two instances on
 * one path (a client reopened before the old one finished writing) then never write the same
 * temporary file at once, and a new instance reads the file only after pending writes landed.
 */
const writeChains = new Map<string, Promise<void>>();

/**
 * Storage in one JSON file (Node only; exported from `@syncline/client/node`). The whole map is
 * kept in memory and the whole file rewritten on each change: fine for a client's queue, cursors
 * and cached state, not for a database. Each rewrite goes to `<path>.tmp-<pid>`, is flushed to
 * disk and renamed over the file, so a crash leaves either the old or the new file, never a
 * torn one. Changes made while a write is under way are coalesced into the next write.
 */
export class FileStorage implements KeyValueStorage {
  private readonly tempPath: string;
  /** The next write, while it waits for the current one: changes until it starts join it. */
  private queuedWrite: Promise<void> | undefined;
  private closed = false;

  private constructor(
    private readonly path: string,
    private readonly values: Map<string, unknown>,
  ) {
    this.tempPath = `${path}.tmp-${process.pid}`;
  }

  /** Loads `path` (a missing file is an empty storage), creating its directory if needed. */
  static async open(path: string): Promise<FileStorage> {
    const absolute = resolve(path);
    await writeChains.get(absolute);
    await mkdir(dirname(absolute), { recursive: true });
    return new FileStorage(absolute, await readEntries(absolute));
  }

  async get<T>(key: string): Promise<T | undefined> {
    return this.values.has(key) ? cloneJson<T>(this.values.get(key)) : undefined;
  }

  async set(key: string, value: unknown): Promise<void> {
    this.assertOpen();
    this.values.set(key, cloneJson<unknown>(value));
    await this.persist();
  }

  async delete(key: string): Promise<void> {
    this.assertOpen();
    if (!this.values.delete(key)) return;
    await this.persist();
  }

  async keys(prefix: string): Promise<string[]> {
    return keysWithPrefix(this.values.keys(), prefix);
  }

  /** Waits for pending writes; later writes are refused. */
  async close(): Promise<void> {
    this.closed = true;
    await writeChains.get(this.path)?.catch(() => undefined);
  }

  /**
   * Resolves once a write that started after this call has landed, so it holds the caller's
   * change. Writes run one after another on the file's chain; a write that fails rejects its
   * callers but not the writes after it (they carry the same changes and may succeed).
   */
  private persist(): Promise<void> {
    this.queuedWrite ??= this.enqueueWrite();
    return this.queuedWrite;
  }

  private enqueueWrite(): Promise<void> {
    const previous = writeChains.get(this.path) ?? Promise.resolve();
    const write = previous.then(() => {
      // From here on, new changes are not in this snapshot: they must queue a write of their own.
      this.queuedWrite = undefined;
      return writeAtomically(this.path, this.tempPath, this.serialize());
    });
    const tail = write.catch(() => undefined);
    writeChains.set(this.path, tail);
    void tail.then(() => {
      if (writeChains.get(this.path) === tail) writeChains.delete(this.path);
    });
    return write;
  }

  private serialize(): string {
    return JSON.stringify(Object.fromEntries(this.values));
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`FileStorage ${this.path} is closed`);
  }
}

async function readEntries(path: string): Promise<Map<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (isMissingFile(error)) return new Map();
    throw error;
  }
  const parsed: unknown = JSON.parse(text);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`FileStorage ${path}: expected a JSON object`);
  }
  return new Map(Object.entries(parsed));
}

/** Writes the temporary file, flushes it to disk, then renames it over `path` (atomic on POSIX and NTFS). */
async function writeAtomically(path: string, tempPath: string, text: string): Promise<void> {
  try {
    const handle = await open(tempPath, 'w');
    try {
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tempPath, path);
  } catch (error) {
    await unlink(tempPath).catch(() => undefined);
    throw error;
  }
}

function isMissingFile(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'ENOENT';
}
