import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { Hlc, HybridLogicalClock } from './clocks/hlc.js';
import { hlcSchema } from './clocks/schemas.js';

/** A wall clock the test moves by hand. */
function manualClock(start: number): { now: () => number; set: (ms: number) => void } {
  let current = start;
  return { now: () => current, set: (ms) => (current = ms) };
}

describe('Hlc format and parse', () => {
  it('writes 15-digit ms and 5-digit counter so that strings sort', () => {
    const text = Hlc.format({ wallMs: 1_732_492_800_000, counter: 7, node: 'client-a' });
    expect(text).toBe('001732492800000:00007:client-a');
    expect(Hlc.parse(text)).toEqual({ wallMs: 1_732_492_800_000, counter: 7, node: 'client-a' });
    expect(hlcSchema.safeParse(text).success).toBe(true);
  });

  it('rejects malformed timestamps', () => {
    for (const bad of ['', '1:2:n', '001732492800000:00007:', '001732492800000:7:n', '001732492800000:00007:a b']) {
      expect(() => Hlc.parse(bad)).toThrow('not an HLC timestamp');
      expect(hlcSchema.safeParse(bad).success).toBe(false);
    }
  });

  it('string order equals time order, ties broken by node', () => {
    const ts = fc.record({
      wallMs: fc.integer({ min: 0, max: 999_999_999_999_999 }),
      counter: fc.integer({ min: 0, max: 99_999 }),
      node: fc.constantFrom('a', 'b', 'node-1', 'node-10'),
    });
    fc.assert(
      fc.property(ts, ts, (a, b) => {
        const byTime = a.wallMs - b.wallMs || a.counter - b.counter || (a.node < b.node ? -1 : a.node > b.node ? 1 : 0);
        expect(Hlc.compare(Hlc.format(a), Hlc.format(b))).toBe(Math.sign(byTime));
      }),
      { numRuns: 500 },
    );
  });

  it('max picks the later timestamp', () => {
    const early = Hlc.format({ wallMs: 5, counter: 9, node: 'z' });
    const late = Hlc.format({ wallMs: 6, counter: 0, node: 'a' });
    expect(Hlc.max(early, late)).toBe(late);
    expect(Hlc.max(late, early)).toBe(late);
  });
});

describe('HybridLogicalClock', () => {
  it('follows the wall clock when it moves forward', () => {
    const wall = manualClock(1000);
    const clock = new HybridLogicalClock('n1', wall.now);
    expect(Hlc.parse(clock.tick())).toEqual({ wallMs: 1000, counter: 0, node: 'n1' });
    wall.set(2000);
    expect(Hlc.parse(clock.tick())).toEqual({ wallMs: 2000, counter: 0, node: 'n1' });
  });

  it('stays monotonic when the wall clock stalls or goes backwards', () => {
    const wall = manualClock(5000);
    const clock = new HybridLogicalClock('n1', wall.now);
    const issued = [clock.tick()];
    for (const ms of [5000, 4000, 100, 4999, 5000, 5001, 3000]) {
      wall.set(ms);
      issued.push(clock.tick());
    }
    for (let i = 1; i < issued.length; i++) expect(Hlc.compare(issued[i - 1] as string, issued[i] as string)).toBe(-1);
    expect(Hlc.parse(issued[2] as string)).toEqual({ wallMs: 5000, counter: 2, node: 'n1' });
  });

  it('receive returns a timestamp later than both the remote and every local one', () => {
    const ts = fc.record({
      wallMs: fc.integer({ min: 0, max: 10 }),
      counter: fc.integer({ min: 0, max: 5 }),
      node: fc.constantFrom('r1', 'r2'),
    });
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 10 }), ts)),
        (start, events) => {
          const wall = manualClock(start);
          const clock = new HybridLogicalClock('local', wall.now);
          let last = clock.tick();
          for (const [ms, remote] of events) {
            wall.set(ms);
            const remoteText = Hlc.format(remote);
            const next = clock.receive(remoteText);
            expect(Hlc.compare(next, remoteText)).toBe(1);
            expect(Hlc.compare(next, last)).toBe(1);
            expect(Hlc.parse(next).node).toBe('local');
            last = next;
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('receive from the future moves the clock ahead of it', () => {
    const clock = new HybridLogicalClock('local', () => 1000);
    const remote = Hlc.format({ wallMs: 9000, counter: 4, node: 'r' });
    expect(Hlc.parse(clock.receive(remote))).toEqual({ wallMs: 9000, counter: 5, node: 'local' });
    expect(Hlc.compare(clock.tick(), remote)).toBe(1);
    expect(clock.skewOf(remote)).toBe(8000);
  });

  it('borrows the next millisecond when the counter overflows on tick', () => {
    const clock = new HybridLogicalClock('n1', () => 1000);
    let last = clock.tick();
    for (let i = 0; i < 99_999; i++) last = clock.tick();
    expect(Hlc.parse(last)).toEqual({ wallMs: 1000, counter: 99_999, node: 'n1' });
    const next = clock.tick();
    expect(Hlc.parse(next)).toEqual({ wallMs: 1001, counter: 0, node: 'n1' });
    expect(Hlc.compare(last, next)).toBe(-1);
    expect(hlcSchema.safeParse(next).success).toBe(true);
  });

  it('borrows the next millisecond when receive would overflow the counter', () => {
    const clock = new HybridLogicalClock('n1', () => 1000);
    const remote = Hlc.format({ wallMs: 1000, counter: 99_999, node: 'r' });
    const next = clock.receive(remote);
    expect(Hlc.parse(next)).toEqual({ wallMs: 1001, counter: 0, node: 'n1' });
    expect(Hlc.compare(next, remote)).toBe(1);
  });
});
