import { describe, expect, it } from '@jest/globals';
import { TokenBucket } from './token-bucket.js';

describe('TokenBucket', () => {
  it('allows a burst, then the sustained rate, and says how long to wait', () => {
    const bucket = new TokenBucket(10, 3, 0);
    expect([bucket.take(0), bucket.take(0), bucket.take(0)]).toEqual([0, 0, 0]);
    expect(bucket.take(0)).toBe(100); // one token every 100 ms
    expect(bucket.take(50)).toBe(50);
    expect(bucket.take(100)).toBe(0);
    expect(bucket.take(100)).toBe(100);
  });

  it('refills up to the burst only', () => {
    const bucket = new TokenBucket(10, 2, 0);
    bucket.take(0);
    bucket.take(0);
    expect(bucket.isFull(150)).toBe(false);
    expect(bucket.isFull(10_000)).toBe(true);
    expect([bucket.take(10_000), bucket.take(10_000), bucket.take(10_000)]).toEqual([0, 0, 100]);
  });

  it('ignores a clock that goes backwards', () => {
    const bucket = new TokenBucket(1, 1, 1000);
    expect(bucket.take(1000)).toBe(0);
    expect(bucket.take(500)).toBe(1000);
  });

  it('takes what other gateways spent, going into debt no deeper than one burst', () => {
    const bucket = new TokenBucket(10, 20, 0);
    bucket.debit(15, 0);
    expect([bucket.take(0), bucket.take(0), bucket.take(0), bucket.take(0), bucket.take(0)]).toEqual([0, 0, 0, 0, 0]);
    expect(bucket.take(0)).toBe(100);
    bucket.debit(1000, 0);
    // 20 tokens of debt at 10 a second: 2 s until the first token is back, and no longer.
    expect(bucket.take(1000)).toBe(1100);
    expect(bucket.take(2100)).toBe(0);
  });
});
