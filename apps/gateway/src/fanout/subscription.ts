import type { Connection } from '../connections/connection.js';
import type { ChangeMessage } from './change-message.js';

/**
 * One connection's interest in one entity type. While it replays missed changes it buffers live
 * ones; once the replay is done the buffer is flushed, skipping anything the replay already
 * delivered, so the seam between replay and live loses and repeats nothing.
 */
export class Subscription {
  private buffer: ChangeMessage[] | undefined;
  /** Highest stream sequence delivered (or known to be covered) for this subscription. */
  lastSeq: number;

  constructor(
    readonly connection: Connection,
    readonly entityType: string,
    startSeq: number,
    replaying: boolean,
  ) {
    this.lastSeq = startSeq;
    this.buffer = replaying ? [] : undefined;
  }

  get isReplaying(): boolean {
    return this.buffer !== undefined;
  }

  /** A live change, with its frame already built. */
  offer(change: ChangeMessage, frame: () => string | Buffer): boolean {
    if (this.buffer) {
      this.buffer.push(change);
      return false;
    }
    return this.deliver(change, frame);
  }

  /** Delivers a change unless this subscription already has it; the author gets no echo. */
  deliver(change: ChangeMessage, frame: () => string | Buffer): boolean {
    if (change.seq <= this.lastSeq) return false;
    this.lastSeq = change.seq;
    if (change.authorConnectionId === this.connection.id) return false;
    this.connection.sendRaw(frame());
    return true;
  }

  /** Ends the replay: buffered live changes go out in order, minus what the replay delivered. */
  goLive(frameOf: (change: ChangeMessage) => string): void {
    const buffered = this.buffer ?? [];
    this.buffer = undefined;
    for (const change of buffered) this.deliver(change, () => frameOf(change));
  }
}
