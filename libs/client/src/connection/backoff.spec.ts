import { describe, expect, it } from '@jest/globals';
import { backoffDelay } from './backoff.js';

const bounds = { minDelayMs: 1_000, maxDelayMs: 30_000 };

describe('backoffDelay', () => {
  it('is exactly the minimum at attempt 0, whatever the jitter', () => {
    expect(backoffDelay(0, bounds, () => 0)).toBe(1_000);
    expect(backoffDelay(0, bounds, () => 0.7)).toBe(1_000);
    expect(backoffDelay(0, bounds, () => 1)).toBe(1_000);
  });

  it('gives the minimum for random 0 and the cap for random 1', () => {
    expect(backoffDelay(3, bounds, () => 0)).toBe(1_000);
    expect(backoffDelay(3, bounds, () => 1)).toBe(8_000);
    expect(backoffDelay(3, bounds, () => 0.5)).toBe(4_500);
  });

  it('doubles the cap with each attempt until the maximum', () => {
    const caps = Array.from({ length: 12 }, (_, attempt) => backoffDelay(attempt, bounds, () => 1));
    expect(caps.slice(0, 6)).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000]);
    for (let i = 1; i < caps.length; i++) expect(caps[i]).toBeGreaterThanOrEqual(caps[i - 1] ?? 0);
  });

  it('stays between the bounds for any attempt and any jitter', () => {
    for (const attempt of [0, 1, 2, 5, 10, 50, 1_100, Infinity, -3, Number.NaN]) {
      for (const r of [0, 0.01, 0.5, 0.99, 1, 7, -1, Number.NaN]) {
        const delay = backoffDelay(attempt, bounds, () => r);
        expect(delay).toBeGreaterThanOrEqual(1_000);
        expect(delay).toBeLessThanOrEqual(30_000);
      }
    }
  });

  it('spreads delays across the whole range (full jitter)', () => {
    const delays = [0, 0.25, 0.5, 0.75, 1].map((r) => backoffDelay(2, bounds, () => r));
    expect(delays).toEqual([1_000, 1_750, 2_500, 3_250, 4_000]);
  });

  it('never goes above the maximum, even with the maximum below the minimum', () => {
    expect(backoffDelay(4, { minDelayMs: 500, maxDelayMs: 300 }, () => 1)).toBe(300);
  });

  it('uses 1 s and 30 s by default', () => {
    expect(backoffDelay(20, undefined, () => 1)).toBe(30_000);
    expect(backoffDelay(20, undefined, () => 0)).toBe(1_000);
  });
});
