import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { JsonValue } from '@syncline/contracts';
import { jsonEqual } from './equal.js';

// fast-check types object members as optional; the values it generates never hold `undefined`.
const anyJson = fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<JsonValue>;

describe('jsonEqual', () => {
  it('ignores key order but not array order', () => {
    expect(jsonEqual({ a: 1, b: [1, 2] }, { b: [1, 2], a: 1 })).toBe(true);
    expect(jsonEqual([1, 2], [2, 1])).toBe(false);
  });

  it('tells apart values JavaScript loosely confuses', () => {
    const pairs: Array<[JsonValue | undefined, JsonValue | undefined]> = [
      [null, undefined],
      [null, {}],
      [[], {}],
      [0, false],
      ['1', 1],
      [{ a: 1 }, { a: 1, b: 2 }],
    ];
    for (const [a, b] of pairs) {
      expect(jsonEqual(a, b)).toBe(false);
      expect(jsonEqual(b, a)).toBe(false);
    }
  });

  it('does not see inherited properties', () => {
    expect(jsonEqual({ constructor: 1 }, { toString: 1 })).toBe(false);
    expect(jsonEqual({}, { constructor: Object } as unknown as JsonValue)).toBe(false);
  });

  it('agrees with comparing canonical JSON text', () => {
    fc.assert(
      fc.property(anyJson, anyJson, (a, b) => {
        expect(jsonEqual(a, a)).toBe(true);
        expect(jsonEqual(a, b)).toBe(canonical(a) === canonical(b));
      }),
      { numRuns: 300 },
    );
  });
});

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) =>
    item !== null && typeof item === 'object' && !Array.isArray(item)
      ? Object.fromEntries(Object.entries(item).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : item,
  );
}
