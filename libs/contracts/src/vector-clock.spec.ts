import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { VectorClocks, type VectorClock } from './clocks/vector-clock.js';

const clock = (record: Record<string, number>): VectorClock => VectorClocks.fromRecord(record);
const clockArb = fc
  .dictionary(fc.constantFrom('a', 'b', 'c', 'server'), fc.nat({ max: 4 }), { noNullPrototype: true })
  .map((record) => VectorClocks.fromRecord(record));

describe('VectorClocks.compare', () => {
  it('orders a clock before one that knows more', () => {
    expect(VectorClocks.compare(clock({ a: 1 }), clock({ a: 2 }))).toBe('before');
    expect(VectorClocks.compare(clock({ a: 1 }), clock({ a: 1, b: 1 }))).toBe('before');
    expect(VectorClocks.compare(VectorClocks.empty(), clock({ b: 1 }))).toBe('before');
  });

  it('orders a clock after one it dominates', () => {
    expect(VectorClocks.compare(clock({ a: 2, b: 1 }), clock({ a: 1 }))).toBe('after');
  });

  it('finds equal clocks equal, missing entries counting as 0', () => {
    expect(VectorClocks.compare(clock({ a: 1, b: 2 }), clock({ b: 2, a: 1 }))).toBe('equal');
    expect(
      VectorClocks.compare(
        new Map([
          ['a', 1],
          ['b', 0],
        ]),
        clock({ a: 1 }),
      ),
    ).toBe('equal');
  });

  it('finds clocks that each know something the other does not concurrent', () => {
    expect(VectorClocks.compare(clock({ a: 1 }), clock({ b: 1 }))).toBe('concurrent');
    expect(VectorClocks.compare(clock({ a: 2, b: 1 }), clock({ a: 1, b: 2 }))).toBe('concurrent');
  });

  it('is antisymmetric, and merge dominates both inputs', () => {
    const mirror = { before: 'after', after: 'before', equal: 'equal', concurrent: 'concurrent' } as const;
    fc.assert(
      fc.property(clockArb, clockArb, (a, b) => {
        expect(VectorClocks.compare(b, a)).toBe(mirror[VectorClocks.compare(a, b)]);
        const merged = VectorClocks.merge(a, b);
        expect(VectorClocks.dominatesOrEquals(merged, a)).toBe(true);
        expect(VectorClocks.dominatesOrEquals(merged, b)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('puts an incremented clock after the original', () => {
    fc.assert(
      fc.property(clockArb, fc.constantFrom('a', 'z'), (a, node) => {
        expect(VectorClocks.compare(VectorClocks.increment(a, node), a)).toBe('after');
      }),
      { numRuns: 100 },
    );
  });
});

describe('VectorClocks records', () => {
  it('round-trips Map → record → Map', () => {
    fc.assert(
      fc.property(clockArb, (a) => {
        expect(VectorClocks.fromRecord(VectorClocks.toRecord(a))).toEqual(a);
      }),
      { numRuns: 200 },
    );
  });

  it('round-trips record → Map → record, dropping zero entries', () => {
    expect(VectorClocks.toRecord(VectorClocks.fromRecord({ a: 1, z: 0, b: 3 }))).toEqual({ a: 1, b: 3 });
  });

  it('serializes with sorted keys whatever the insertion order', () => {
    const record = VectorClocks.toRecord(
      new Map([
        ['z', 1],
        ['a', 2],
        ['m', 0],
      ]),
    );
    expect(JSON.stringify(record)).toBe('{"a":2,"z":1}');
  });

  it('does not mutate the clock it increments or merges', () => {
    const a = clock({ a: 1 });
    VectorClocks.increment(a, 'a');
    VectorClocks.merge(a, clock({ a: 5 }));
    expect(VectorClocks.toRecord(a)).toEqual({ a: 1 });
  });
});
