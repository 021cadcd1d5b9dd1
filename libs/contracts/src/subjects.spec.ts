import { describe, expect, it } from '@jest/globals';
import { ErrorCode, SynclineError } from './errors.js';
import { QueryName, Subjects } from './subjects.js';

describe('Subjects', () => {
  const subjects = new Subjects('sync');

  it('builds entity subjects from tenant, type and id', () => {
    expect(subjects.mutation('acme', 'orders', 'o-1')).toBe('sync.mut.acme.orders.o-1');
    expect(subjects.change('acme', 'orders', 'o-1')).toBe('sync.chg.acme.orders.o-1');
  });

  it('encodes entity ids that are not plain tokens', () => {
    expect(subjects.mutation('acme', 'orders', 'a.b')).toBe('sync.mut.acme.orders.~YS5i');
    expect(subjects.change('acme', 'orders', 'x >*').split('.')).toHaveLength(5);
  });

  it('builds wildcard and service subjects', () => {
    expect(subjects.allMutations()).toBe('sync.mut.>');
    expect(subjects.allChanges()).toBe('sync.chg.>');
    expect(subjects.changesOfType('acme', 'orders')).toBe('sync.chg.acme.orders.>');
    expect(subjects.conflictPolicy()).toBe('sync.conflict.policy');
    expect(subjects.conflictPolicyChanged()).toBe('sync.conflict.policy.changed');
    expect(subjects.outcome('gw-1')).toBe('sync.outcome.gw-1');
    expect(subjects.query(QueryName.snapshot)).toBe('sync.query.snapshot');
  });

  it('isolates namespaces', () => {
    expect(new Subjects('test_42').mutation('acme', 'orders', 'o-1')).toBe('test_42.mut.acme.orders.o-1');
  });

  it('rejects names that would break the subject', () => {
    const invalid = (action: () => unknown): void => {
      expect(action).toThrow(SynclineError);
      try {
        action();
      } catch (error) {
        expect(SynclineError.is(error, ErrorCode.INVALID_IDENTIFIER)).toBe(true);
      }
    };
    invalid(() => new Subjects('sync.x'));
    invalid(() => subjects.mutation('ac.me', 'orders', 'o-1'));
    invalid(() => subjects.change('acme', 'or*ders', 'o-1'));
    invalid(() => subjects.changesOfType('acme', '>'));
    invalid(() => subjects.outcome('gw 1'));
    invalid(() => subjects.mutation('acme', 'orders', ''));
  });
});
