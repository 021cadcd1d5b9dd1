import { describe, expect, it } from '@jest/globals';
import { VectorClocks, type JsonObject, type MutationMessage } from '@syncline/contracts';
import { NEW_ENTITY, type EntityState } from '../entities/entity-state.js';
import { isLate, isLateConcurrent, keptInStreamOrder, nextState, type LaterWrites } from './mutation-rules.js';

const STREAM = 'epoch-a';

function entity(data: JsonObject, appliedSeq: number, appliedStream = STREAM): EntityState {
  return { ...NEW_ENTITY, version: 3, data, appliedSeq, appliedStream };
}

function later(fields: string[], replaced = false, clients = ['me']): LaterWrites {
  return {
    fields: new Set(fields),
    replaced,
    clients: new Set(clients),
    before: { version: 1, vectorClock: VectorClocks.empty() },
  };
}

describe('stream order of one entity', () => {
  it('calls a mutation late only when a higher sequence of the same stream was applied', () => {
    const state = entity({}, 10);
    expect(isLate(state, { stream: STREAM, seq: 9 })).toBe(true);
    expect(isLate(state, { stream: STREAM, seq: 11 })).toBe(false);
    expect(isLate(state, { stream: 'epoch-b', seq: 1 })).toBe(false);
  });

  it('keeps the highest applied sequence when a late mutation is applied', () => {
    const mutation = { vectorClock: {}, hlc: '' } as unknown as MutationMessage;
    const after = nextState(entity({}, 10), {}, mutation, { stream: STREAM, seq: 4 });
    expect(after.appliedSeq).toBe(10);
    const renewed = nextState(entity({}, 10), {}, mutation, { stream: 'epoch-b', seq: 4 });
    expect([renewed.appliedStream, renewed.appliedSeq]).toEqual(['epoch-b', 4]);
  });

  it('keeps what later mutations wrote and the rest of the proposal', () => {
    const current = entity({ title: 'new', done: false }, 10);
    const proposed = { title: 'old', done: true };
    expect(keptInStreamOrder(current, proposed, later(['/title']))).toEqual({ title: 'new', done: true });
  });

  it('leaves nothing when later mutations wrote every field it changes, or replaced the document', () => {
    const current = entity({ title: 'new', done: false }, 10);
    expect(keptInStreamOrder(current, { title: 'old', done: false }, later(['/title']))).toBeUndefined();
    expect(keptInStreamOrder(current, { title: 'new', done: true }, later([], true))).toBeUndefined();
  });

  it('treats a late no-op as a no-op, not as superseded', () => {
    const current = entity({ title: 'new' }, 10);
    expect(keptInStreamOrder(current, { title: 'new' }, later(['/title']))).toEqual({ title: 'new' });
  });

  it('leaves a late delete the fields written since', () => {
    const current = entity({ title: 'first', n: 2 }, 10);
    expect(keptInStreamOrder(current, null, later(['/n']))).toEqual({ n: 2 });
  });

  it('calls a late mutation concurrent when another client wrote since, or when its base is behind', () => {
    const mine = { clientId: 'me', baseVersion: 1, vectorClock: {} } as unknown as MutationMessage;
    expect(isLateConcurrent(later(['/a']), mine)).toBe(false);
    expect(isLateConcurrent(later(['/a'], false, ['me', 'you']), mine)).toBe(true);
    expect(
      isLateConcurrent(
        { ...later(['/a']), before: { version: 2, vectorClock: VectorClocks.fromRecord({ you: 1 }) } },
        mine,
      ),
    ).toBe(true);
  });
});
