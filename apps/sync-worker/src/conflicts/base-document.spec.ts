import { describe, expect, it } from '@jest/globals';
import { Hlc, type FieldChange } from '@syncline/contracts';
import { documentAtVersion, fieldHlcsSince } from './base-document.js';

const at = (ms: number) => Hlc.format({ wallMs: 1_732_492_800_000 + ms, counter: 0, node: 'n' });
const set = (field: string, oldValue: string, newValue: string, ms: number): FieldChange => ({
  field,
  changeType: 'modified',
  oldValue,
  newValue,
  timestamp: at(ms),
});

describe('the change log as a conflict sees it', () => {
  const logged = [
    { version: 2, changes: [set('/note', 'a', 'b', 20)] },
    { version: 3, changes: [set('/stage', 'new', 'packed', 30), set('/note', 'b', 'c', 25)] },
  ];

  it('rebuilds the document at the base version', () => {
    expect(documentAtVersion({ note: 'c', stage: 'packed' }, 3, 1, logged)).toEqual({ note: 'a', stage: 'new' });
    expect(documentAtVersion({ note: 'c', stage: 'packed' }, 3, 1, logged.slice(1))).toBeUndefined();
  });

  it('tells when each field last changed after the base', () => {
    expect(fieldHlcsSince(1, logged)).toEqual({ '/note': at(25), '/stage': at(30) });
    expect(fieldHlcsSince(2, logged)).toEqual({ '/note': at(25), '/stage': at(30) });
    expect(fieldHlcsSince(3, logged)).toEqual({});
  });
});
