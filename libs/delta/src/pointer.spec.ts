import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { SynclineError } from '@syncline/contracts';
import { decodePointer, encodePointer } from './pointer.js';

describe('encodePointer / decodePointer', () => {
  it('encodes the RFC 6901 examples', () => {
    expect(encodePointer([])).toBe('');
    expect(encodePointer([''])).toBe('/');
    expect(encodePointer(['a/b'])).toBe('/a~1b');
    expect(encodePointer(['m~n'])).toBe('/m~0n');
    expect(encodePointer(['~1'])).toBe('/~01');
    expect(encodePointer(['foo', '0', ' '])).toBe('/foo/0/ ');
  });

  it('decodes ~01 as "~1", not "/"', () => {
    expect(decodePointer('/~01')).toEqual(['~1']);
    expect(decodePointer('/a~1b/m~0n')).toEqual(['a/b', 'm~n']);
    expect(decodePointer('/')).toEqual(['']);
    expect(decodePointer('//')).toEqual(['', '']);
    expect(decodePointer('')).toEqual([]);
  });

  it('round-trips any path of keys', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'binary', maxLength: 6 }), { maxLength: 5 }), (segments) => {
        expect(decodePointer(encodePointer(segments))).toEqual(segments);
      }),
      { numRuns: 300 },
    );
  });

  it.each(['a', 'a/b', '/~', '/~2', '/a~/b'])('rejects the malformed pointer %j', (pointer) => {
    expect(() => decodePointer(pointer)).toThrow(SynclineError);
  });
});
