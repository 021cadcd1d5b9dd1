import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { SyncPositions, cursorSchema } from './sync-position.js';

describe('SyncPositions', () => {
  it('formats and parses a cursor', () => {
    expect(SyncPositions.format({ epoch: 'm3x1abc', seq: 42 })).toBe('m3x1abc:42');
    expect(SyncPositions.parse('m3x1abc:42')).toEqual({ epoch: 'm3x1abc', seq: 42 });
  });

  it('round-trips any valid position', () => {
    const position = fc.record({
      epoch: fc.stringMatching(/^[a-z0-9]{1,32}$/),
      seq: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    });
    fc.assert(
      fc.property(position, (p) => {
        const cursor = SyncPositions.format(p);
        expect(SyncPositions.parse(cursor)).toEqual(p);
        expect(cursorSchema.safeParse(cursor).success).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it.each([
    '',
    '42',
    'abc',
    'abc:',
    ':1',
    'ABC:1',
    'a b:1',
    'abc:-1',
    'abc:1.5',
    'abc:1:2',
    `${'a'.repeat(33)}:1`,
    'abc:12345678901234567',
  ])('rejects the malformed cursor %j', (cursor) => {
    expect(SyncPositions.parse(cursor)).toBeUndefined();
    expect(cursorSchema.safeParse(cursor).success).toBe(false);
  });

  it('rejects a sequence beyond the safe integers', () => {
    expect(SyncPositions.parse('abc:9999999999999999')).toBeUndefined();
    expect(SyncPositions.parse(`abc:${Number.MAX_SAFE_INTEGER}`)).toEqual({
      epoch: 'abc',
      seq: Number.MAX_SAFE_INTEGER,
    });
  });

  it('derives the same epoch from a stream creation time in any form', () => {
    const created = '2024-11-25T00:00:00.000Z';
    const epoch = SyncPositions.epochOf(created);
    expect(epoch).toBe(new Date(created).getTime().toString(36));
    expect(SyncPositions.epochOf(new Date(created))).toBe(epoch);
    expect(SyncPositions.parse(`${epoch}:1`)).toEqual({ epoch, seq: 1 });
  });
});
