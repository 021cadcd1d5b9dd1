import { z } from 'zod';

/**
 * Where a subscriber is in the change feed: the CHANGES stream sequence of the last change it
 * applied, and the epoch of the stream that sequence belongs to. A stream that is recreated
 * starts a new epoch, so sequences of the old one can never be mistaken for the new one's.
 *
 * Serialized as the cursor string `<epoch>:<seq>`.
 */
export interface SyncPosition {
  readonly epoch: string;
  readonly seq: number;
}

const CURSOR_PATTERN = /^([a-z0-9]{1,32}):(\d{1,16})$/;

export const cursorSchema = z.string().regex(CURSOR_PATTERN, 'expected a cursor "<epoch>:<seq>"');

export const SyncPositions = {
  format(position: SyncPosition): string {
    return `${position.epoch}:${position.seq}`;
  },

  parse(cursor: string): SyncPosition | undefined {
    const match = CURSOR_PATTERN.exec(cursor);
    if (!match) return undefined;
    const seq = Number(match[2]);
    return Number.isSafeInteger(seq) ? { epoch: match[1] as string, seq } : undefined;
  },

  /** The epoch of a stream, derived from its creation time, identical on every gateway. */
  epochOf(streamCreated: string | Date): string {
    return new Date(streamCreated).getTime().toString(36);
  },
};
