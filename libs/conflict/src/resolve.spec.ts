import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { ConflictStrategy, Hlc, type JsonObject, type JsonValue } from '@syncline/contracts';
import { jsonEqual } from '@syncline/delta';
import { mergeThreeWay } from './merge.js';
import { resolveConflict } from './resolve.js';
import type { ConflictInput } from './types.js';

const EARLY = Hlc.format({ wallMs: 1_732_492_800_000, counter: 0, node: 'server-1' });
const LATE = Hlc.format({ wallMs: 1_732_492_800_001, counter: 0, node: 'client-a' });

function input(
  base: JsonObject | null,
  server: JsonObject | null,
  client: JsonObject | null,
  clientLater = true,
): ConflictInput {
  return {
    base,
    server: { data: server, hlc: clientLater ? EARLY : LATE },
    client: { data: client, hlc: clientLater ? LATE : EARLY },
  };
}

const STRATEGIES = Object.values(ConflictStrategy);

describe('whole-document strategies', () => {
  const conflict = input({ stage: 'new', n: 1 }, { stage: 'packed', n: 1 }, { stage: 'new', n: 2 });

  it('server-wins keeps the server document', () => {
    expect(resolveConflict('server-wins', conflict)).toEqual({
      result: { stage: 'packed', n: 1 },
      winner: 'server',
      contested: [],
    });
  });

  it('client-wins takes the client document', () => {
    expect(resolveConflict('client-wins', conflict)).toEqual({
      result: { stage: 'new', n: 2 },
      winner: 'client',
      contested: [],
    });
  });

  it('last-write-wins takes the document with the later HLC', () => {
    expect(resolveConflict('last-write-wins', conflict).winner).toBe('client');
    const serverLater = input({ a: 0 }, { a: 1 }, { a: 2 }, false);
    expect(resolveConflict('last-write-wins', serverLater)).toEqual({
      result: { a: 1 },
      winner: 'server',
      contested: ['/a'],
    });
  });

  it('last-write-wins breaks a same-time tie by the node id in the HLC', () => {
    const at = (node: string): string => Hlc.format({ wallMs: 5, counter: 3, node });
    const tie: ConflictInput = {
      base: {},
      server: { data: { v: 's' }, hlc: at('node-b') },
      client: { data: { v: 'c' }, hlc: at('node-a') },
    };
    expect(resolveConflict('last-write-wins', tie).result).toEqual({ v: 's' });
    const swapped = {
      ...tie,
      server: { ...tie.server, hlc: at('node-a') },
      client: { ...tie.client, hlc: at('node-b') },
    };
    expect(resolveConflict('last-write-wins', swapped).result).toEqual({ v: 'c' });
  });

  it('last-write-wins keeps the server document when the HLCs are identical', () => {
    const same: ConflictInput = {
      base: {},
      server: { data: { v: 's' }, hlc: EARLY },
      client: { data: { v: 'c' }, hlc: EARLY },
    };
    expect(resolveConflict('last-write-wins', same).result).toEqual({ v: 's' });
  });

  it('can end with a deleted entity', () => {
    const deleted = input({ a: 1 }, null, { a: 2 }, false);
    expect(resolveConflict('server-wins', deleted)).toEqual({ result: null, winner: 'server', contested: [''] });
    expect(resolveConflict('last-write-wins', deleted).result).toBeNull();
    expect(resolveConflict('client-wins', deleted).result).toEqual({ a: 2 });
  });

  it('names the client the winner when both sides hold the result', () => {
    expect(resolveConflict('server-wins', input({ a: 1 }, { a: 2 }, { a: 2 })).winner).toBe('client');
  });
});

describe('merge', () => {
  it('keeps disjoint edits of both sides', () => {
    const merged = resolveConflict(
      'merge',
      input(
        { stage: 'new', qty: 1, note: 'x' },
        { stage: 'packed', qty: 1, note: 'x' },
        { stage: 'new', qty: 2, note: 'x' },
      ),
    );
    expect(merged).toEqual({ result: { note: 'x', qty: 2, stage: 'packed' }, winner: 'merged', contested: [] });
  });

  it('resolves a field both sides changed by the later entity HLC when its own change time is unknown', () => {
    expect(mergeThreeWay(input({ a: 0, b: 0 }, { a: 's', b: 1 }, { a: 'c', b: 0 }, true))).toEqual({
      result: { a: 'c', b: 1 },
      winner: 'merged',
      contested: ['/a'],
    });
    expect(mergeThreeWay(input({ a: 0, b: 0 }, { a: 's', b: 1 }, { a: 'c', b: 0 }, false)).result).toEqual({
      a: 's',
      b: 1,
    });
  });

  it('resolves a contested field by when it last changed on the server, not by the entity', () => {
    // Offline, the client edited `note` at T1. Meanwhile the server took `note` at T0 < T1 and
    // `stage` at T2 > T1: the client's note is the later write of that field and wins.
    const [t0, t1, t2] = [0, 1, 2].map((k) => Hlc.format({ wallMs: 1_732_492_800_000 + k, counter: 0, node: 'n' }));
    const conflict: ConflictInput = {
      base: { note: 'a', stage: 'new' },
      server: { data: { note: 'b', stage: 'packed' }, hlc: t2!, fieldHlcs: { '/note': t0!, '/stage': t2! } },
      client: { data: { note: 'c', stage: 'new' }, hlc: t1! },
    };
    expect(mergeThreeWay(conflict)).toEqual({
      result: { note: 'c', stage: 'packed' },
      winner: 'merged',
      contested: ['/note'],
    });
    // A later server write of the field, or of an object enclosing it, keeps the server's value.
    const later = { ...conflict.server, fieldHlcs: { '/note': t2! } };
    expect(mergeThreeWay({ ...conflict, server: later }).result).toEqual({ note: 'b', stage: 'packed' });
    const nested: ConflictInput = {
      base: { addr: { city: 'Oslo' } },
      server: { data: { addr: { city: 'Bergen' } }, hlc: t2!, fieldHlcs: { '/addr': t2! } },
      client: { data: { addr: { city: 'Molde' } }, hlc: t1! },
    };
    expect(mergeThreeWay(nested).result).toEqual({ addr: { city: 'Bergen' } });
  });

  it('does not contest a field both sides changed to the same value', () => {
    expect(mergeThreeWay(input({ a: 0 }, { a: 1 }, { a: 1 }))).toEqual({
      result: { a: 1 },
      winner: 'client',
      contested: [],
    });
  });

  it('merges nested objects and reports nested contested pointers, escaped', () => {
    const base = { addr: { 'a/b': 1, city: 'Oslo', zip: '0150' } };
    const server = { addr: { 'a/b': 2, city: 'Bergen', zip: '0150' } };
    const client = { addr: { 'a/b': 3, city: 'Oslo', zip: '5003' } };
    expect(mergeThreeWay(input(base, server, client))).toEqual({
      result: { addr: { 'a/b': 3, city: 'Bergen', zip: '5003' } },
      winner: 'merged',
      contested: ['/addr/a~1b'],
    });
  });

  it('treats arrays as atomic values', () => {
    const result = mergeThreeWay(input({ tags: ['a'] }, { tags: ['a', 's'] }, { tags: ['a', 'c'] }, false));
    expect(result).toEqual({ result: { tags: ['a', 's'] }, winner: 'server', contested: ['/tags'] });
  });

  it('deletes a field deleted on one side and unchanged on the other', () => {
    expect(mergeThreeWay(input({ a: 1, b: 1 }, { b: 1 }, { a: 1, b: 2 })).result).toEqual({ b: 2 });
    expect(mergeThreeWay(input({ a: 1, b: 1 }, { a: 1, b: 2 }, { b: 1 })).result).toEqual({ b: 2 });
  });

  it('decides a field deleted on one side and changed on the other by HLC', () => {
    expect(mergeThreeWay(input({ a: 1 }, { a: 2 }, {}, true))).toEqual({
      result: {},
      winner: 'client',
      contested: ['/a'],
    });
    expect(mergeThreeWay(input({ a: 1 }, { a: 2 }, {}, false))).toEqual({
      result: { a: 2 },
      winner: 'server',
      contested: ['/a'],
    });
  });

  it('merges fields both sides added under a new key', () => {
    expect(mergeThreeWay(input({}, { meta: { s: 1 } }, { meta: { c: 1 } })).result).toEqual({ meta: { c: 1, s: 1 } });
  });

  it('lets a deletion win over an unchanged document', () => {
    expect(mergeThreeWay(input({ a: 1 }, null, { a: 1 }))).toEqual({ result: null, winner: 'server', contested: [] });
    expect(mergeThreeWay(input({ a: 1 }, { a: 1 }, null, false))).toEqual({
      result: null,
      winner: 'client',
      contested: [],
    });
  });

  it('decides a deletion against an edit by entity HLC', () => {
    expect(mergeThreeWay(input({ a: 1 }, null, { a: 2 }, true))).toEqual({
      result: { a: 2 },
      winner: 'client',
      contested: [''],
    });
    expect(mergeThreeWay(input({ a: 1 }, null, { a: 2 }, false))).toEqual({
      result: null,
      winner: 'server',
      contested: [''],
    });
  });

  it('keeps a deletion made on both sides', () => {
    expect(mergeThreeWay(input({ a: 1 }, null, null))).toEqual({ result: null, winner: 'client', contested: [] });
  });

  it('merges two creations of the same entity field by field', () => {
    expect(mergeThreeWay(input(null, { a: 1, s: 1 }, { a: 2, c: 1 }, true))).toEqual({
      result: { a: 2, c: 1, s: 1 },
      winner: 'merged',
      contested: ['/a'],
    });
  });

  it('keeps fields named like Object.prototype members', () => {
    const base = { constructor: 1, toString: 'a' };
    expect(mergeThreeWay(input(base, { constructor: 2, toString: 'a' }, { constructor: 1 })).result).toEqual({
      constructor: 2,
    });
    expect(mergeThreeWay(input({}, {}, { hasOwnProperty: 1 })).result).toEqual({ hasOwnProperty: 1 });
  });
});

// ---- properties ------------------------------------------------------------------------------

const key = fc.constantFrom('a', 'b', 'c', 'd', '', 'x/y', 'm~n', 'constructor');
const leaf: fc.Arbitrary<JsonValue> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer({ min: 0, max: 3 }),
  fc.constantFrom('s', 't'),
  fc.constant<JsonValue>([1]),
);
const { object: doc } = fc.letrec<{ value: JsonValue; object: JsonObject }>((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, leaf, tie('object')),
  object: fc.dictionary(key, tie('value'), { maxKeys: 4, noNullPrototype: true }),
}));
const hlc = fc
  .record({
    wallMs: fc.integer({ min: 0, max: 3 }),
    counter: fc.integer({ min: 0, max: 2 }),
    node: fc.constantFrom('n1', 'n2'),
  })
  .map(Hlc.format);
const maybeDoc = fc.option(doc, { nil: null, freq: 6 });
const conflictInput: fc.Arbitrary<ConflictInput> = fc.record({
  base: maybeDoc,
  server: fc.record({ data: maybeDoc, hlc }),
  client: fc.record({ data: maybeDoc, hlc }),
});

/** The same document with every object's keys in reverse order. */
function reversedKeys<T extends JsonValue | null>(value: T): T {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  return Object.fromEntries(
    Object.entries(value)
      .reverse()
      .map(([name, item]) => [name, reversedKeys(item)]),
  ) as T;
}

describe('properties', () => {
  it('every strategy is deterministic and does not mutate its input', () => {
    fc.assert(
      fc.property(conflictInput, fc.constantFrom(...STRATEGIES), (conflict, strategy) => {
        const snapshot = structuredClone(conflict);
        const first = resolveConflict(strategy, conflict);
        expect(resolveConflict(strategy, structuredClone(conflict))).toEqual(first);
        expect(conflict).toEqual(snapshot);
      }),
      { numRuns: 400 },
    );
  });

  it('the winner matches the result', () => {
    fc.assert(
      fc.property(conflictInput, fc.constantFrom(...STRATEGIES), (conflict, strategy) => {
        const { result, winner } = resolveConflict(strategy, conflict);
        const expected = jsonEqual(result, conflict.client.data)
          ? 'client'
          : jsonEqual(result, conflict.server.data)
            ? 'server'
            : 'merged';
        expect(winner).toBe(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('merge does not depend on the key order of its inputs', () => {
    fc.assert(
      fc.property(conflictInput, (conflict) => {
        const reordered: ConflictInput = {
          base: reversedKeys(conflict.base),
          server: { ...conflict.server, data: reversedKeys(conflict.server.data) },
          client: { ...conflict.client, data: reversedKeys(conflict.client.data) },
        };
        const a = mergeThreeWay(conflict);
        const b = mergeThreeWay(reordered);
        expect(jsonEqual(a.result, b.result)).toBe(true);
        expect(b.winner).toBe(a.winner);
        expect(b.contested).toEqual(a.contested);
      }),
      { numRuns: 400 },
    );
  });

  it('merge keeps both sides of disjoint top-level edits', () => {
    const edits = fc.dictionary(key, fc.option(leaf, { nil: undefined }), { maxKeys: 4, noNullPrototype: true });
    fc.assert(
      fc.property(doc, edits, edits, hlc, hlc, (base, serverEdits, clientEdits, serverHlc, clientHlc) => {
        // Each key is edited by at most one side: server edits win the draw for shared keys.
        const clientOnly = Object.fromEntries(
          Object.entries(clientEdits).filter(([name]) => !Object.hasOwn(serverEdits, name)),
        );
        const server = edit(base, serverEdits);
        const client = edit(base, clientOnly);
        const expected = edit(edit(base, serverEdits), clientOnly);
        const resolution = mergeThreeWay({
          base,
          server: { data: server, hlc: serverHlc },
          client: { data: client, hlc: clientHlc },
        });
        expect(jsonEqual(resolution.result, expected)).toBe(true);
        expect(resolution.contested).toEqual([]);
      }),
      { numRuns: 400 },
    );
  });

  it('merge with one side unchanged takes the other side', () => {
    fc.assert(
      fc.property(conflictInput, (conflict) => {
        const clientOnly = mergeThreeWay({ ...conflict, server: { ...conflict.server, data: conflict.base } });
        expect(jsonEqual(clientOnly.result, conflict.client.data)).toBe(true);
        const serverOnly = mergeThreeWay({ ...conflict, client: { ...conflict.client, data: conflict.base } });
        expect(jsonEqual(serverOnly.result, conflict.server.data)).toBe(true);
        expect([clientOnly.contested, serverOnly.contested]).toEqual([[], []]);
      }),
      { numRuns: 300 },
    );
  });

  it('merge resolves a top-level scalar both sides changed by the later HLC', () => {
    fc.assert(
      fc.property(
        doc,
        hlc,
        hlc,
        fc.integer({ min: 10, max: 20 }),
        fc.integer({ min: 30, max: 40 }),
        (base, serverHlc, clientHlc, s, c) => {
          const server = { ...base, f: s };
          const client = { ...base, f: c };
          const { result, contested } = mergeThreeWay({
            base,
            server: { data: server, hlc: serverHlc },
            client: { data: client, hlc: clientHlc },
          });
          expect(result?.['f']).toBe(clientHlc > serverHlc ? c : s);
          expect(contested).toEqual(['/f']);
        },
      ),
      { numRuns: 300 },
    );
  });
});

/** `base` with each edited key set to its value, or deleted when the value is `undefined`. */
function edit(base: JsonObject, edits: Record<string, JsonValue | undefined>): JsonObject {
  const result: JsonObject = { ...base };
  for (const [name, value] of Object.entries(edits)) {
    if (value === undefined) Reflect.deleteProperty(result, name);
    else result[name] = value;
  }
  return result;
}
