import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { JsonValue } from '@syncline/contracts';
import { applyMergePatch } from './merge-patch.js';

/** RFC 7386 Appendix A: [target, patch, result]. */
const APPENDIX_A: Array<[JsonValue, JsonValue, JsonValue]> = [
  [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
  [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
  [{ a: 'b' }, { a: null }, {}],
  [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
  [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
  [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
  [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
  [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
  [
    ['a', 'b'],
    ['c', 'd'],
    ['c', 'd'],
  ],
  [{ a: 'b' }, ['c'], ['c']],
  [{ a: 'foo' }, null, null],
  [{ a: 'foo' }, 'bar', 'bar'],
  [{ e: null }, { a: 1 }, { e: null, a: 1 }],
  [[1, 2], { a: 'b', c: null }, { a: 'b' }],
  [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
];

// fast-check types object members as optional; the values it generates never hold `undefined`.
const anyJson = fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<JsonValue>;

describe('applyMergePatch', () => {
  it.each(APPENDIX_A)('RFC 7386 appendix: %j + %j = %j', (target, patch, result) => {
    expect(applyMergePatch(target, patch)).toEqual(result);
  });

  it('applies the RFC 7386 section 3 example', () => {
    const target = {
      title: 'Goodbye!',
      author: { givenName: 'John', familyName: 'Doe' },
      tags: ['example', 'sample'],
      content: 'This will be unchanged',
    };
    const patch = { title: 'Hello!', phoneNumber: '+01-123-456-7890', author: { familyName: null }, tags: ['example'] };
    expect(applyMergePatch(target, patch)).toEqual({
      title: 'Hello!',
      author: { givenName: 'John' },
      tags: ['example'],
      content: 'This will be unchanged',
      phoneNumber: '+01-123-456-7890',
    });
  });

  it('creates the document when there is none', () => {
    expect(applyMergePatch(undefined, { a: { b: 1, c: null } })).toEqual({ a: { b: 1 } });
  });

  it('keeps keys such as constructor and __proto__ as data', () => {
    const patch = JSON.parse('{"constructor":{"x":1},"__proto__":{"polluted":true}}') as JsonValue;
    const result = applyMergePatch({}, patch);
    expect(Object.keys(result as object).sort()).toEqual(['__proto__', 'constructor']);
    expect(Object.getPrototypeOf(result)).toBe(Object.prototype);
  });

  it('never mutates the target or the patch', () => {
    fc.assert(
      fc.property(anyJson, anyJson, (target, patch) => {
        const before = [structuredClone(target), structuredClone(patch)];
        applyMergePatch(target, patch);
        expect([target, patch]).toEqual(before);
      }),
      { numRuns: 200 },
    );
  });
});
