import { describe, expect, it } from '@jest/globals';
import { Hlc } from './clocks/hlc.js';
import { MAX_SYNC_LIMIT, MAX_TYPES_PER_SUBSCRIBE, clientFrameSchemas, isClientFrameType } from './frames/client.js';
import { JSON_LIMITS } from './json.js';

// 15-digit wall ms, as Hlc.format writes it (see the HLC pattern).
const HLC = Hlc.format({ wallMs: 1_732_492_800_000, counter: 0, node: 'client-a' });

const MUTATE = {
  mutationId: 'm-0001-abcd',
  entityType: 'orders',
  entityId: 'o-1',
  op: 'patch',
  data: { stage: 'packed' },
  baseVersion: 3,
  vectorClock: { 'client-a': 4 },
  hlc: HLC,
} as const;

function nested(depth: number): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf: 1 };
  for (let i = 0; i < depth; i++) value = { child: value };
  return value;
}

function without(key: keyof typeof MUTATE): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...MUTATE };
  Reflect.deleteProperty(copy, key);
  return copy;
}

describe('mutate frame', () => {
  const accepts = (payload: unknown): boolean => clientFrameSchemas.mutate.safeParse(payload).success;

  it('accepts the documented examples', () => {
    expect(accepts(MUTATE)).toBe(true);
    expect(accepts({ ...MUTATE, op: 'upsert', data: { stage: 'new', lines: [{ sku: 'A', qty: 2 }] } })).toBe(true);
    expect(accepts({ ...without('data'), op: 'delete' })).toBe(true);
    expect(accepts({ ...MUTATE, baseVersion: 0, vectorClock: {} })).toBe(true);
    expect(accepts({ ...MUTATE, entityId: 'any printable id: ünïcödé / with.dots' })).toBe(true);
  });

  it('rejects an HLC whose wall time is not 15 digits', () => {
    expect(accepts({ ...MUTATE, hlc: '000001732492800000:00000:client-a' })).toBe(false);
    expect(accepts({ ...MUTATE, hlc: 'yesterday' })).toBe(false);
  });

  it.each(['mutationId', 'entityType', 'entityId', 'op', 'baseVersion', 'vectorClock', 'hlc'] as const)(
    'rejects a payload without %s',
    (key) => {
      expect(accepts(without(key))).toBe(false);
    },
  );

  it('rejects data missing for upsert and patch, or present on delete', () => {
    expect(accepts({ ...without('data'), op: 'patch' })).toBe(false);
    expect(accepts({ ...without('data'), op: 'upsert' })).toBe(false);
    expect(accepts({ ...MUTATE, op: 'delete' })).toBe(false);
  });

  it('rejects unknown fields', () => {
    expect(accepts({ ...MUTATE, extra: true })).toBe(false);
    expect(accepts(JSON.parse(JSON.stringify(MUTATE).replace('{', '{"__proto__":{"x":1},')))).toBe(false);
  });

  it('rejects malformed field values', () => {
    expect(accepts({ ...MUTATE, mutationId: 'short' })).toBe(false);
    expect(accepts({ ...MUTATE, mutationId: 'has spaces here' })).toBe(false);
    expect(accepts({ ...MUTATE, entityType: 'or.ders' })).toBe(false);
    expect(accepts({ ...MUTATE, entityId: '' })).toBe(false);
    expect(accepts({ ...MUTATE, op: 'merge' })).toBe(false);
    expect(accepts({ ...MUTATE, baseVersion: -1 })).toBe(false);
    expect(accepts({ ...MUTATE, baseVersion: 1.5 })).toBe(false);
    expect(accepts({ ...MUTATE, vectorClock: { 'client-a': -1 } })).toBe(false);
    expect(accepts({ ...MUTATE, data: [1, 2] })).toBe(false);
    expect(accepts({ ...MUTATE, data: null })).toBe(false);
  });

  it('rejects prototype-polluting keys in data', () => {
    expect(accepts({ ...MUTATE, data: JSON.parse('{"__proto__":{"x":1}}') })).toBe(false);
    expect(accepts({ ...MUTATE, data: JSON.parse('{"a":{"constructor":{"prototype":{"x":1}}}}') })).toBe(false);
    expect(({} as Record<string, unknown>)['x']).toBeUndefined();
  });

  it('rejects data nested deeper than the limit', () => {
    expect(accepts({ ...MUTATE, data: nested(100) })).toBe(false);
    expect(accepts({ ...MUTATE, data: nested(JSON_LIMITS.maxDepth - 2) })).toBe(true);
    expect(accepts({ ...MUTATE, data: nested(JSON_LIMITS.maxDepth) })).toBe(false);
  });

  it('rejects NUL characters in strings and keys', () => {
    expect(accepts({ ...MUTATE, data: { note: 'a\u0000b' } })).toBe(false);
    expect(accepts({ ...MUTATE, data: { list: ['ok', '\u0000'] } })).toBe(false);
    expect(accepts({ ...MUTATE, data: { 'k\u0000': 1 } })).toBe(false);
    expect(accepts({ ...MUTATE, entityId: 'o\u00001' })).toBe(false);
  });

  it('rejects lone surrogates, which have no UTF-8 form, and keeps surrogate pairs', () => {
    expect(accepts({ ...MUTATE, data: { note: 'a\ud800b' } })).toBe(false);
    expect(accepts({ ...MUTATE, data: { ['\udc00']: 1 } })).toBe(false);
    expect(accepts({ ...MUTATE, data: { note: 'emoji \ud83d\ude00' } })).toBe(true);
  });
});

describe('other client frames', () => {
  it('accepts documented subscribe, unsubscribe, sync and ping payloads', () => {
    expect(clientFrameSchemas.subscribe.safeParse({ entityTypes: ['orders', 'customers'] }).success).toBe(true);
    expect(
      clientFrameSchemas.subscribe.safeParse({ entityTypes: ['orders'], cursors: { orders: 'm3x1abc:42' } }).success,
    ).toBe(true);
    expect(clientFrameSchemas.unsubscribe.safeParse({ entityTypes: ['orders'] }).success).toBe(true);
    expect(clientFrameSchemas.sync.safeParse({ entityType: 'orders', since: 'm3x1abc:42', limit: 100 }).success).toBe(
      true,
    );
    expect(clientFrameSchemas.sync.safeParse({ entityType: 'orders', entityId: 'o-1', sinceVersion: 3 }).success).toBe(
      true,
    );
    expect(clientFrameSchemas.sync.safeParse({ entityType: 'orders', snapshot: true, pageToken: 'abc' }).success).toBe(
      true,
    );
    expect(clientFrameSchemas.ping.safeParse(undefined).success).toBe(false);
    expect(clientFrameSchemas.ping.safeParse({}).success).toBe(true);
  });

  it('rejects malformed subscribe payloads', () => {
    const subscribe = clientFrameSchemas.subscribe;
    expect(subscribe.safeParse({}).success).toBe(false);
    expect(subscribe.safeParse({ entityTypes: [] }).success).toBe(false);
    expect(
      subscribe.safeParse({ entityTypes: Array.from({ length: MAX_TYPES_PER_SUBSCRIBE + 1 }, (_, i) => `t${i}`) })
        .success,
    ).toBe(false);
    expect(subscribe.safeParse({ entityTypes: ['orders'], cursors: { orders: 'not-a-cursor' } }).success).toBe(false);
    expect(subscribe.safeParse({ entityTypes: ['orders'], extra: 1 }).success).toBe(false);
  });

  it('rejects malformed sync and ping payloads', () => {
    expect(clientFrameSchemas.sync.safeParse({ entityType: 'orders', sinceVersion: 3 }).success).toBe(false);
    expect(clientFrameSchemas.sync.safeParse({ entityType: 'orders', limit: MAX_SYNC_LIMIT + 1 }).success).toBe(false);
    expect(clientFrameSchemas.sync.safeParse({ entityType: 'orders', limit: 0 }).success).toBe(false);
    expect(clientFrameSchemas.sync.safeParse({ since: 'm3x1abc:42' }).success).toBe(false);
    expect(clientFrameSchemas.ping.safeParse({ extra: 1 }).success).toBe(false);
  });

  it('knows its frame types and nothing inherited', () => {
    expect(isClientFrameType('mutate')).toBe(true);
    expect(isClientFrameType('welcome')).toBe(false);
    expect(isClientFrameType('constructor')).toBe(false);
    expect(isClientFrameType('__proto__')).toBe(false);
  });
});
