/**
 * Runs storage writes one at a time, in the order they were asked for, whether or not callers
 * await them: a `remove` called right after an un-awaited `enqueue` must not delete before the
 * write it undoes. A failed write rejects its own caller only; the writes after it still run.
 */
export class SerialWriter {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(write: () => Promise<T>): Promise<T> {
    const result = this.tail.then(write);
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** Resolves once every write asked for so far has finished (successfully or not). */
  async idle(): Promise<void> {
    await this.tail;
  }
}
