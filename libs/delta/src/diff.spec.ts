import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { FieldDiff, JsonObject, JsonValue } from '@syncline/contracts';
import { applyDiff } from './apply.js';
import { diff, stampChanges } from './diff.js';
import { jsonEqual } from './equal.js';

/** Keys that break naive pointer escaping or `in`-based lookups. */
const TRICKY_KEYS = ['', 'a/b', 'm~n', '~1', '~0', '/', '0', 'constructor', 'toString', 'hasOwnProperty', 'a', 'b'];

const key = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...TRICKY_KEYS) },
  { weight: 1, arbitrary: fc.string({ maxLength: 3 }) },
);

// Few distinct leaves, so that two generated documents often share keys and values.
const leaf: fc.Arbitrary<JsonValue> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer({ min: -2, max: 2 }),
  fc.constantFrom('x', 'y', ''),
  fc.array(fc.integer({ min: 0, max: 2 }), { maxLength: 2 }),
);

const { object: trickyObject } = fc.letrec<{ value: JsonValue; object: JsonObject }>((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, leaf, tie('object')),
  object: fc.dictionary(key, tie('value'), { maxKeys: 5 }),
}));

/** A document and an edited copy of it: keys kept, dropped, replaced, recursed into, or added. */
function edited(value: JsonValue): fc.Arbitrary<JsonValue> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return fc.oneof(fc.constant(value), leaf, trickyObject);
  }
  const entries = Object.entries(value).map(([name, item]) =>
    fc
      .oneof(fc.constant(undefined), fc.constant(item), edited(item), leaf)
      .map((next): [string, JsonValue | undefined] => [name, next]),
  );
  return fc.tuple(fc.tuple(...entries), fc.dictionary(key, leaf, { maxKeys: 2 })).map(([kept, extra]) => {
    const result: JsonObject = {};
    for (const [name, next] of kept) if (next !== undefined) result[name] = next;
    return { ...result, ...extra };
  });
}

const relatedPair = trickyObject.chain((a) => fc.tuple(fc.constant<JsonValue>(a), edited(a)));
const unrelatedPair = fc.tuple(trickyObject, trickyObject);
// fast-check types object members as optional; the values it generates never hold `undefined`.
const anyJson = fc.jsonValue() as fc.Arbitrary<JsonValue>;
const anyPair = fc.tuple(anyJson, anyJson);

function roundTrips([a, b]: [JsonValue, JsonValue]): void {
  const result = applyDiff(a, diff(a, b));
  expect(jsonEqual(result, b)).toBe(true);
  // An oracle independent of jsonEqual, in case both shared a blind spot.
  expect(canonical(result)).toBe(canonical(b));
}

describe('diff', () => {
  it('lists nested field changes as JSON Pointers in key order', () => {
    const before = { name: 'A', stage: 'new', address: { city: 'Oslo', zip: '0150' }, tags: ['x'] };
    const after = { stage: 'packed', name: 'A', address: { city: 'Bergen' }, tags: ['x', 'y'], note: 'fragile' };
    expect(diff(before, after)).toEqual([
      { field: '/address/city', changeType: 'modified', oldValue: 'Oslo', newValue: 'Bergen' },
      { field: '/address/zip', changeType: 'removed', oldValue: '0150' },
      { field: '/note', changeType: 'added', newValue: 'fragile' },
      { field: '/stage', changeType: 'modified', oldValue: 'new', newValue: 'packed' },
      { field: '/tags', changeType: 'modified', oldValue: ['x'], newValue: ['x', 'y'] },
    ]);
  });

  it('escapes keys in pointers', () => {
    expect(diff({}, { '': 1, 'a/b': 2, 'm~n': 3, '~1': 4 }).map((change) => change.field)).toEqual([
      '/',
      '/a~1b',
      '/m~0n',
      '/~01',
    ]);
  });

  it('treats a removed field as a tombstone without newValue', () => {
    const [change] = diff({ a: { b: 1 } }, {});
    expect(change).toEqual({ field: '/a', changeType: 'removed', oldValue: { b: 1 } });
    expect(change !== undefined && Object.hasOwn(change, 'newValue')).toBe(false);
  });

  it('replaces a field whose type changes, even between object and array', () => {
    expect(diff({ a: { b: 1 } }, { a: [1] })).toEqual([
      { field: '/a', changeType: 'modified', oldValue: { b: 1 }, newValue: [1] },
    ]);
  });

  it('makes one root change when the roots are not both objects', () => {
    expect(diff(1, 2)).toEqual([{ field: '', changeType: 'modified', oldValue: 1, newValue: 2 }]);
    expect(diff([1], { a: 1 })).toEqual([{ field: '', changeType: 'modified', oldValue: [1], newValue: { a: 1 } }]);
    expect(diff(null, { a: 1 })).toEqual([{ field: '', changeType: 'modified', oldValue: null, newValue: { a: 1 } }]);
    expect(diff(undefined, 'x')).toEqual([{ field: '', changeType: 'added', newValue: 'x' }]);
    expect(diff('x', undefined)).toEqual([{ field: '', changeType: 'removed', oldValue: 'x' }]);
    expect(diff(undefined, undefined)).toEqual([]);
  });

  it('treats a missing entity as {} next to an object', () => {
    expect(diff(undefined, { a: 1 })).toEqual([{ field: '/a', changeType: 'added', newValue: 1 }]);
    expect(diff({ a: 1 }, undefined)).toEqual([{ field: '/a', changeType: 'removed', oldValue: 1 }]);
    expect(applyDiff(undefined, diff(undefined, { a: { b: 1 } }))).toEqual({ a: { b: 1 } });
  });

  it('is empty for equal documents whatever their key order', () => {
    expect(diff({ a: 1, b: { c: [1, { d: 2 }] } }, { b: { c: [1, { d: 2 }] }, a: 1 })).toEqual([]);
  });

  it('does not mistake inherited properties for fields', () => {
    expect(diff({}, { constructor: 1, toString: 'x' })).toEqual([
      { field: '/constructor', changeType: 'added', newValue: 1 },
      { field: '/toString', changeType: 'added', newValue: 'x' },
    ]);
    expect(applyDiff({}, diff({}, { constructor: { a: 1 } }))).toEqual({ constructor: { a: 1 } });
  });
});

describe('applyDiff(a, diff(a, b)) equals b', () => {
  it('for edited documents with tricky keys', () => {
    fc.assert(fc.property(relatedPair, roundTrips), { numRuns: 600 });
  });

  it('for unrelated documents with tricky keys', () => {
    fc.assert(fc.property(unrelatedPair, roundTrips), { numRuns: 500 });
  });

  it('for any JSON values', () => {
    fc.assert(fc.property(anyPair, roundTrips), { numRuns: 500 });
  });

  it('keeps a __proto__ key as data', () => {
    const a = JSON.parse('{"x":1}') as JsonValue;
    const b = JSON.parse('{"__proto__":{"polluted":true},"x":1}') as JsonValue;
    const result = applyDiff(a, diff(a, b));
    expect(jsonEqual(result, b)).toBe(true);
    expect(Object.getPrototypeOf(result)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });
});

describe('applyDiff', () => {
  it('never mutates its input', () => {
    fc.assert(
      fc.property(relatedPair, ([a, b]) => {
        const snapshot = structuredClone(a);
        const changes = diff(a, b);
        applyDiff(deepFreeze(a), deepFreeze(changes));
        expect(a).toEqual(snapshot);
      }),
      { numRuns: 300 },
    );
  });

  it('shares the subtrees it does not change', () => {
    const doc = { keep: { deep: [1, 2] }, edit: { x: 1 } };
    const result = applyDiff(doc, [
      { field: '/edit/x', changeType: 'modified', oldValue: 1, newValue: 2 },
    ]) as JsonObject;
    expect(result).toEqual({ keep: { deep: [1, 2] }, edit: { x: 2 } });
    expect(result['keep']).toBe(doc.keep);
    expect(doc.edit.x).toBe(1);
  });

  it('creates missing parents for an added field', () => {
    expect(applyDiff({}, [{ field: '/a/b/c', changeType: 'added', newValue: 1 }])).toEqual({ a: { b: { c: 1 } } });
    expect(applyDiff(undefined, [{ field: '/a/b', changeType: 'added', newValue: 1 }])).toEqual({ a: { b: 1 } });
  });

  it('replaces a non-object parent, since the change says it is an object', () => {
    expect(applyDiff({ a: 5 }, [{ field: '/a/b', changeType: 'added', newValue: 1 }])).toEqual({ a: { b: 1 } });
  });

  it('ignores the removal of an absent field', () => {
    const doc = { a: { b: 1 }, s: 'x' };
    const changes: FieldDiff[] = [
      { field: '/missing', changeType: 'removed', oldValue: 1 },
      { field: '/a/missing/deeper', changeType: 'removed', oldValue: 1 },
      { field: '/s/0', changeType: 'removed', oldValue: 'x' },
    ];
    expect(applyDiff(doc, changes)).toBe(doc);
  });

  it('applies changes in order and replaces or removes the root', () => {
    expect(
      applyDiff({ a: 1 }, [
        { field: '/a', changeType: 'modified', oldValue: 1, newValue: { b: 1 } },
        { field: '/a/c', changeType: 'added', newValue: 2 },
      ]),
    ).toEqual({ a: { b: 1, c: 2 } });
    expect(applyDiff({ a: 1 }, [{ field: '', changeType: 'modified', oldValue: { a: 1 }, newValue: [1] }])).toEqual([
      1,
    ]);
    expect(applyDiff({ a: 1 }, [{ field: '', changeType: 'removed', oldValue: { a: 1 } }])).toBeUndefined();
  });

  it('does not write into a value taken from a change', () => {
    const value = { b: 1 };
    const changes: FieldDiff[] = [
      { field: '/a', changeType: 'added', newValue: value },
      { field: '/a/c', changeType: 'added', newValue: 2 },
    ];
    expect(applyDiff({}, changes)).toEqual({ a: { b: 1, c: 2 } });
    expect(value).toEqual({ b: 1 });
  });

  it('rejects an added or modified change without newValue', () => {
    expect(() => applyDiff({}, [{ field: '/a', changeType: 'added' }])).toThrow('has no newValue');
  });
});

describe('stampChanges', () => {
  it('adds the timestamp to every change and keeps the rest', () => {
    const changes = diff({ a: 1 }, { b: 2 });
    expect(stampChanges(changes, 'T')).toEqual([
      { field: '/a', changeType: 'removed', oldValue: 1, timestamp: 'T' },
      { field: '/b', changeType: 'added', newValue: 2, timestamp: 'T' },
    ]);
  });
});

function canonical(value: unknown): string {
  return (
    JSON.stringify(value, (_key, item: unknown) =>
      item !== null && typeof item === 'object' && !Array.isArray(item)
        ? Object.fromEntries(Object.entries(item).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : item,
    ) ?? 'undefined'
  );
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const item of Object.values(value)) deepFreeze(item);
    Object.freeze(value);
  }
  return value;
}
