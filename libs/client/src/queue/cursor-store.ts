import type { KeyValueStorage } from '../storage/storage.js';
import { SerialWriter } from './serial-writer.js';

/**
 * The resume cursor of each entity type (where the change log was read up to), persisted under
 * `<namespace>/cursors/<entityType>` so that a restarted client replays only what it missed.
 * Reads see changes at once; writes reach storage one at a time in call order.
 */
export class CursorStore {
  private readonly writer = new SerialWriter();

  private constructor(
    private readonly storage: KeyValueStorage,
    private readonly prefix: string,
    private readonly cursors: Map<string, string>,
  ) {}

  static async open(storage: KeyValueStorage, namespace: string): Promise<CursorStore> {
    const prefix = `${namespace}/cursors/`;
    const keys = await storage.keys(prefix);
    const values = await Promise.all(keys.map((key) => storage.get<unknown>(key)));
    const cursors = new Map<string, string>();
    keys.forEach((key, index) => {
      const value = values[index];
      if (typeof value === 'string') cursors.set(key.slice(prefix.length), value);
    });
    return new CursorStore(storage, prefix, cursors);
  }

  get(entityType: string): string | undefined {
    return this.cursors.get(entityType);
  }

  /** Resolves once persisted; setting the cursor already held writes nothing. */
  async set(entityType: string, cursor: string): Promise<void> {
    if (this.cursors.get(entityType) === cursor) return this.writer.idle();
    this.cursors.set(entityType, cursor);
    await this.writer.run(() => this.storage.set(this.prefix + entityType, cursor));
  }

  async delete(entityType: string): Promise<void> {
    this.cursors.delete(entityType);
    await this.writer.run(() => this.storage.delete(this.prefix + entityType));
  }

  /** Every cursor, by entity type (a copy). */
  all(): Record<string, string> {
    return Object.fromEntries(this.cursors);
  }
}
