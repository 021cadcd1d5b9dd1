import { describe, expect, it } from '@jest/globals';
import { withValuesAt } from './values-at.js';

describe('withValuesAt', () => {
  it('takes the named fields from the source and leaves the others', () => {
    const target = { title: 'mine', done: true, owner: 'ann' };
    const source = { title: 'theirs', done: false, owner: 'bob' };
    expect(withValuesAt(target, source, ['/title'])).toEqual({ title: 'theirs', done: true, owner: 'ann' });
    expect(target).toEqual({ title: 'mine', done: true, owner: 'ann' });
  });

  it('removes a field the source does not have, and adds one only the source has', () => {
    expect(withValuesAt({ a: 1, b: 2 }, { b: 2, c: 3 }, ['/a', '/c'])).toEqual({ b: 2, c: 3 });
  });

  it('follows nested pointers without touching sibling fields', () => {
    const target = { style: { color: 'red', size: 1 }, n: 1 };
    const source = { style: { color: 'blue', size: 9 }, n: 9 };
    expect(withValuesAt(target, source, ['/style/color'])).toEqual({ style: { color: 'blue', size: 1 }, n: 1 });
  });

  it('takes the value whole where either side is no object on the way', () => {
    expect(withValuesAt({ style: 'plain' }, { style: { color: 'blue' } }, ['/style/color'])).toEqual({
      style: { color: 'blue' },
    });
    expect(withValuesAt({ a: { b: 1 } }, 'scalar', ['/a/b'])).toBe('scalar');
    expect(withValuesAt({ a: 1 }, { b: 2 }, [''])).toEqual({ b: 2 });
  });

  it('unescapes pointer tokens and keeps keys such as __proto__ as data', () => {
    const source = JSON.parse('{"a/b": 1, "__proto__": {"x": 1}}');
    const result = withValuesAt({}, source, ['/a~1b', '/__proto__']) as Record<string, unknown>;
    expect(Object.keys(result).sort()).toEqual(['__proto__', 'a/b']);
    expect(Object.getPrototypeOf(result)).toBe(Object.prototype);
  });
});
