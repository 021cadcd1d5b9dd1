import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { JsonValue } from '@syncline/contracts';
import { applyDiff } from './apply.js';
import { diff } from './diff.js';
import { jsonEqual } from './equal.js';
import { toJsonPatch, type JsonPatchOperation } from './json-patch.js';
import { decodePointer } from './pointer.js';

interface SuiteCase {
  readonly comment?: string;
  readonly doc?: JsonValue;
  readonly expected?: JsonValue;
}

// Jest runs from the repository root, where npm installed the suite.
function loadSuite(file: string): Array<[string, JsonValue, JsonValue]> {
  const path = join(process.cwd(), 'node_modules', 'json-patch-test-suite', file);
  const cases = JSON.parse(readFileSync(path, 'utf8')) as SuiteCase[];
  return cases.flatMap((testCase, index) =>
    testCase.doc !== undefined && testCase.expected !== undefined
      ? [
          [`${file} #${index} ${testCase.comment ?? ''}`, testCase.doc, testCase.expected] as [
            string,
            JsonValue,
            JsonValue,
          ],
        ]
      : [],
  );
}

const SUITE = [...loadSuite('tests.json'), ...loadSuite('spec_tests.json')];

/**
 * A deliberately strict RFC 6902 applier for the operations `toJsonPatch` emits: `replace` and
 * `remove` demand an existing member, and arrays are never entered since diffs treat them as atomic.
 */
function applyJsonPatch(doc: JsonValue, operations: readonly JsonPatchOperation[]): JsonValue | undefined {
  let root: JsonValue | undefined = structuredClone(doc);
  for (const operation of operations) {
    const segments = decodePointer(operation.path);
    const last = segments.pop();
    if (last === undefined) {
      root = operation.op === 'remove' ? undefined : structuredClone(operation.value);
      continue;
    }
    let parent: JsonValue | undefined = root;
    for (const segment of segments) {
      parent = isObject(parent) && Object.hasOwn(parent, segment) ? parent[segment] : undefined;
    }
    if (!isObject(parent)) throw new Error(`${operation.op} ${operation.path}: parent is not an object`);
    const exists = Object.hasOwn(parent, last);
    if (operation.op !== 'add' && !exists) throw new Error(`${operation.op} ${operation.path}: no such member`);
    if (operation.op === 'remove') Reflect.deleteProperty(parent, last);
    else
      Object.defineProperty(parent, last, {
        value: structuredClone(operation.value),
        enumerable: true,
        writable: true,
        configurable: true,
      });
  }
  return root;
}

function isObject(value: JsonValue | undefined): value is { [key: string]: JsonValue } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

describe('json-patch-test-suite documents', () => {
  it('has cases to run', () => {
    expect(SUITE.length).toBeGreaterThan(50);
  });

  it.each(SUITE)('%s: applyDiff(doc, diff(doc, expected)) gives expected', (_name, doc, expected) => {
    expect(jsonEqual(applyDiff(doc, diff(doc, expected)), expected)).toBe(true);
  });

  it.each(SUITE)('%s: toJsonPatch applied by RFC 6902 gives the same result', (_name, doc, expected) => {
    const changes = diff(doc, expected);
    expect(jsonEqual(applyJsonPatch(doc, toJsonPatch(changes)), applyDiff(doc, changes))).toBe(true);
  });
});

describe('toJsonPatch', () => {
  it('maps added, modified and removed to add, replace and remove', () => {
    const changes = diff({ a: 1, b: { c: 2 }, 'x/y': 0 }, { a: 2, b: {}, n: [1], 'x/y': 0 });
    expect(toJsonPatch(changes)).toEqual([
      { op: 'replace', path: '/a', value: 2 },
      { op: 'remove', path: '/b/c' },
      { op: 'add', path: '/n', value: [1] },
    ]);
  });

  it('rejects an added change without newValue', () => {
    expect(() => toJsonPatch([{ field: '/a', changeType: 'added' }])).toThrow('has no newValue');
  });
});
