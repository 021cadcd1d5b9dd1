import { describe, expect, it } from '@jest/globals';
import type { PendingMutation } from './offline-queue.js';
import { SendLanes } from './send-lanes.js';

function mutation(mutationId: string, entityId: string, entityType = 'orders'): PendingMutation {
  return {
    mutationId,
    entityType,
    entityId,
    op: 'patch',
    data: { n: mutationId },
    baseVersion: 0,
    vectorClock: {},
    hlc: '',
    clientId: 'c',
    queuedAt: 0,
  };
}

const ids = (mutations: readonly PendingMutation[]) => mutations.map((m) => m.mutationId);

describe('SendLanes', () => {
  const queue = [mutation('a1', 'a'), mutation('b1', 'b'), mutation('a2', 'a'), mutation('a3', 'a')];

  it('sends one mutation per entity at a time, the next once the gateway stored the one before', () => {
    const lanes = new SendLanes();
    expect(ids(lanes.take(queue))).toEqual(['a1', 'b1']);
    expect(ids(lanes.take(queue))).toEqual([]);
    lanes.accepted('a1');
    expect(ids(lanes.take(queue))).toEqual(['a2']);
    lanes.accepted('a2');
    lanes.accepted('b1');
    expect(ids(lanes.take(queue))).toEqual(['a3']);
  });

  it('keeps an entity’s later mutations behind one refused for the moment', () => {
    const lanes = new SendLanes();
    lanes.take(queue);
    lanes.hold('a1');
    expect(ids(lanes.take(queue))).toEqual([]);
    lanes.release('a1');
    expect(ids(lanes.take(queue))).toEqual(['a1']);
  });

  it('moves on when a mutation settles, and starts over on a new connection', () => {
    const lanes = new SendLanes();
    lanes.take(queue);
    lanes.accepted('a1');
    lanes.take(queue);
    lanes.settled('a1');
    const rest = queue.filter((m) => m.mutationId !== 'a1');
    expect(ids(lanes.take(rest))).toEqual([]);
    lanes.reset();
    expect(ids(lanes.take(rest))).toEqual(['b1', 'a2']);
  });

  it('sends a stored mutation again when asked to, to get its overdue outcome, and only while it waits for one', () => {
    const lanes = new SendLanes();
    lanes.take(queue);
    lanes.accepted('a1');
    expect(ids(lanes.take(queue))).toEqual(['a2']);
    expect(lanes.askAgain('a1')).toBe(true);
    expect(ids(lanes.take(queue))).toEqual(['a1']);
    lanes.settled('a1');
    expect(lanes.askAgain('a1')).toBe(false);
  });

  it('tells entities of different types apart', () => {
    const lanes = new SendLanes();
    expect(ids(lanes.take([mutation('o', 'x', 'orders'), mutation('n', 'x', 'notes')]))).toEqual(['o', 'n']);
  });
});
