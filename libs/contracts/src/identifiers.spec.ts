import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { ErrorCode, SynclineError } from './errors.js';
import { MAX_ENTITY_ID_LENGTH, assertName, decodeEntityIdToken, encodeEntityIdToken } from './identifiers.js';

/** Characters a NATS subject token may not hold. */
const UNSAFE_TOKEN = /[.*>\s]/u;

const validId = (unit: 'grapheme-ascii' | 'binary' | 'grapheme'): fc.Arbitrary<string> =>
  fc
    .string({ unit, minLength: 1, maxLength: 40 })
    .filter((id) => id.length <= MAX_ENTITY_ID_LENGTH && !id.includes('\u0000'));

function expectInvalidIdentifier(action: () => unknown): void {
  try {
    action();
  } catch (error) {
    expect(SynclineError.is(error, ErrorCode.INVALID_IDENTIFIER)).toBe(true);
    return;
  }
  throw new Error('expected INVALID_IDENTIFIER to be thrown');
}

describe('entity id tokens', () => {
  it('keeps plain ids as they are', () => {
    expect(encodeEntityIdToken('o-1')).toBe('o-1');
    expect(encodeEntityIdToken('Order_42')).toBe('Order_42');
    expect(decodeEntityIdToken('o-1')).toBe('o-1');
  });

  it('encodes other ids with a ~ prefix', () => {
    expect(encodeEntityIdToken('a.b')).toBe('~YS5i');
    expect(encodeEntityIdToken('*')).toMatch(/^~/);
    expect(decodeEntityIdToken('~YS5i')).toBe('a.b');
  });

  it.each(['grapheme-ascii', 'binary', 'grapheme'] as const)(
    'never puts ".", "*", ">" or whitespace in a token and decodes back (%s strings)',
    (unit) => {
      fc.assert(
        fc.property(validId(unit), (id) => {
          const token = encodeEntityIdToken(id);
          expect(token).not.toMatch(UNSAFE_TOKEN);
          expect(token.length).toBeGreaterThan(0);
          expect(decodeEntityIdToken(token)).toBe(id);
        }),
        { numRuns: 300 },
      );
    },
  );

  it('gives distinct ids distinct tokens', () => {
    fc.assert(
      fc.property(validId('binary'), validId('binary'), (a, b) => {
        fc.pre(a !== b);
        expect(encodeEntityIdToken(a)).not.toBe(encodeEntityIdToken(b));
      }),
      { numRuns: 300 },
    );
  });

  it('encodes the longest allowed id of 4-byte characters', () => {
    const id = '😀'.repeat(MAX_ENTITY_ID_LENGTH / 2);
    expect(decodeEntityIdToken(encodeEntityIdToken(id))).toBe(id);
  });

  it.each(['', 'a\u0000b', 'x'.repeat(MAX_ENTITY_ID_LENGTH + 1)])('rejects the entity id %j', (id) => {
    expectInvalidIdentifier(() => encodeEntityIdToken(id));
  });
});

describe('assertName', () => {
  it('accepts tenants and entity types of [A-Za-z0-9_-]{1,64}', () => {
    expect(assertName('tenant', 'acme-1')).toBe('acme-1');
    expect(assertName('entity type', 'Order_items')).toBe('Order_items');
    expect(assertName('tenant', 'a'.repeat(64))).toBe('a'.repeat(64));
  });

  it.each(['', 'a.b', 'a*', 'a>', 'a b', 'ä', 'a'.repeat(65), '~x', 'a\nb'])('rejects %j', (name) => {
    expectInvalidIdentifier(() => assertName('tenant', name));
    expectInvalidIdentifier(() => assertName('entity type', name));
  });
});
