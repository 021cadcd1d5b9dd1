import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import WebSocket from 'ws';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect as connectNats, headers as natsHeaders } from '@nats-io/transport-node';
import {
  ErrorCode,
  Header,
  Subjects,
  WS_SUBPROTOCOL,
  batchRequestSchema,
  clientFrameSchemas,
  cursorSchema,
  envelopeSchema,
  findUnsafeJson,
  isClientFrameType,
  isJsonObject,
  mutationMessageSchema,
} from '@syncline/contracts';
import { HARD_MAX_PAYLOAD_BYTES } from '../apps/gateway/src/config.js';
import { eventually } from './support/eventually.js';
import { TestSystem, type ServiceName } from './support/system.js';
import { TestClient, hlcNow, mutationId, type Frame } from './support/ws-client.js';

/**
 * I7, bad input is contained: fast-check throws thousands of random and near-valid inputs at
 * every edge (WebSocket frames, the HTTP API and SSE, messages published straight onto
 * MUTATIONS) and checks that every one gets a stable error code (or, when it happens to be
 * valid, a normal answer), that no process dies, that stored data only changes through inputs
 * the system accepted, and that the system still serves a fresh client as fast as usual.
 *
 * Reproducible: the seed is fixed (override with FUZZ_SEED) and printed; a failure names the
 * seed, the fast-check path and the input at fault.
 */

const SEED = Number(process.env['FUZZ_SEED'] ?? 20_251_125);
if (!Number.isSafeInteger(SEED)) throw new Error(`FUZZ_SEED must be an integer, not "${process.env['FUZZ_SEED']}"`);
const NATS_URL = process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';

// How much to throw: about 4,500 WebSocket frames, 1,200 HTTP requests and 700 NATS messages (~35 s).
const WS_RUNS = 130;
const WS_FRAMES_PER_RUN = { minLength: 20, maxLength: 70 };
const WS_CLOSING_RUNS = 6;
const HTTP_RUNS = 60;
const HTTP_REQUESTS_PER_RUN = { minLength: 10, maxLength: 30 };
const HTTP_CONCURRENCY = 4;
const NATS_RUNS = 30;
const NATS_MESSAGES_PER_RUN = { minLength: 20, maxLength: 40 };
const NATS_HEADER_MESSAGES = 40;
/** How long an answer may take, and how long to keep listening for a second (unwanted) one. */
const ANSWER_TIMEOUT_MS = 10_000;
const SETTLE_MS = 60;

const TENANT = 'fuzz';
const CANARY_TENANT = 'fuzz-canary';
/** The fuzz token may read every type and write `notes` and `tasks`, not `locked`. */
const TYPES = ['notes', 'tasks', 'locked'] as const;
const ENTITY_POOL = ['fz-1', 'fz-2', 'canary', 'a.b c*>', '🙂'];
const CANARIES = [
  { tenant: CANARY_TENANT, entityType: 'notes', entityId: 'fz-1' },
  { tenant: TENANT, entityType: 'locked', entityId: 'canary' },
] as const;

const ERROR_CODES: ReadonlySet<string> = new Set(Object.values(ErrorCode));
const HTTP_BODY_LIMIT = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Values that print short in counterexamples and expand when serialized.

/** JSON text inserted as it is (numbers JSON.stringify cannot write, nesting built as text). */
class Raw {
  constructor(
    readonly text: string,
    readonly label = text,
  ) {}
  [fc.toStringMethod](): string {
    return `raw(${this.label})`;
  }
}
/** A string of `count` times `unit`. */
class Huge {
  constructor(
    readonly unit: string,
    readonly count: number,
  ) {}
  [fc.toStringMethod](): string {
    return `huge(${JSON.stringify(this.unit)}×${this.count})`;
  }
}
const raw = (text: string, label?: string) => new Raw(text, label);
const huge = (unit: string, count: number) => new Huge(unit, count);

/** JSON.stringify, with {@link Raw} pasted in and {@link Huge} expanded. */
function toJson(value: unknown): string {
  const pasted: string[] = [];
  const text = JSON.stringify(value, (_key, item: unknown) => {
    if (item instanceof Huge) return item.unit.repeat(item.count);
    if (item instanceof Raw) {
      pasted.push(item.text);
      return `\u0001raw${pasted.length - 1}\u0001`;
    }
    return item;
  });
  return (text ?? '').replace(/"\\u0001raw(\d+)\\u0001"/g, (_match, index: string) => pasted[Number(index)] ?? '');
}

/** A copy with an own, enumerable `key` (also `__proto__`, which an object literal cannot hold). */
function withKey(target: object, key: string, value: unknown): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...target };
  Object.defineProperty(copy, key, { value, enumerable: true, writable: true, configurable: true });
  return copy;
}

function withoutKey(target: object, key: string): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...target };
  delete copy[key];
  return copy;
}

const deep = (depth: number, kind: 'object' | 'array'): Raw =>
  kind === 'object'
    ? raw(`${'{"d":'.repeat(depth)}1${'}'.repeat(depth)}`, `${depth} nested objects`)
    : raw(`${'['.repeat(depth)}${']'.repeat(depth)}`, `${depth} nested arrays`);

const b64 = (value: unknown) => Buffer.from(toJson(value)).toString('base64url');

function preview(data: string | Uint8Array, max = 240): string {
  if (typeof data !== 'string') {
    try {
      return `binary ${preview(new TextDecoder('utf-8', { fatal: true }).decode(data), max)}`;
    } catch {
      const hex = Buffer.from(data.subarray(0, 96)).toString('hex');
      return `bytes[${data.byteLength}] ${hex}${data.byteLength > 96 ? '…' : ''}`;
    }
  }
  const shown = JSON.stringify(data.slice(0, max));
  return data.length > max ? `${shown}… (${data.length} chars)` : shown;
}

function short(value: unknown): string {
  const text = fc.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

// ---------------------------------------------------------------------------------------------
// Placeholders, filled in when an input is sent: unique ids, clocks and tokens of this run.

type TokenName = 'same' | 'other-user' | 'other-tenant' | 'expired' | 'bad-sig' | 'alg-none';
interface RenderContext {
  readonly epoch: string;
  readonly tokens: Readonly<Record<TokenName, string>>;
}
let serial = 0;
const nextSerial = () => String(++serial).padStart(6, '0');

function fill(text: string, ctx: RenderContext): string {
  return text.replace(/@(MID|NID|HLC_NOW|HLC_FUTURE|EPOCH|TOK:[a-z-]+)@/g, (_match, name: string) => {
    switch (name) {
      case 'MID':
        return `fzm-${nextSerial()}`;
      case 'NID':
        return `nats-${nextSerial()}`;
      case 'HLC_NOW':
        return hlcNow('fz');
      case 'HLC_FUTURE':
        return `${String(Date.now() + 3_600_000).padStart(15, '0')}:00000:fz`;
      case 'EPOCH':
        return ctx.epoch;
      default:
        return ctx.tokens[name.slice(4) as TokenName] ?? 'no-such-token';
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Bad values: generic ones, and ones close to what each field accepts.

const UNSAFE_STRINGS = ['a\u0000b', '\u0000', '\ud800', 'x\udfffy', '\udbff\udbff'];
const RAW_NUMBERS = ['1e400', '-1e400', '123456789012345678901234567890', '1E+999', '-0'];
const PROTO_KEYS = ['__proto__', 'constructor', 'prototype'];
const EXTRA_KEYS = ['admin', 'tenant', 'userId', 'extra', '', ...PROTO_KEYS];

const hugeString = fc.oneof(
  fc.constantFrom(257, 1000, 4096, 20_000, 60_000).map((n) => huge('x', n)),
  fc.integer({ min: 65_600, max: 300_000 }).map((n) => huge('y', n)),
);
const deepValue = fc
  .oneof(
    fc.tuple(fc.integer({ min: 33, max: 150 }), fc.constantFrom('object' as const, 'array' as const)),
    fc.tuple(fc.constant(20_000), fc.constantFrom('object' as const, 'array' as const)),
  )
  .map(([depth, kind]) => deep(depth, kind));
const protoObject = fc
  .tuple(fc.constantFrom(...PROTO_KEYS), fc.constantFrom<unknown>({ admin: true }, 1, null, []))
  .map(([key, value]) => withKey({ a: 1 }, key, value));

const badValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(null, true, false, 0, '', 'x', [], {}, [1, 'a'], { a: 1 }),
  fc.constantFrom(2 ** 53, 2 ** 64, 1e308, -1e308, Number.MAX_SAFE_INTEGER + 2, 5e-324, -1, -0.5, 1.5),
  fc.constantFrom(...RAW_NUMBERS).map((text) => raw(text)),
  fc.constantFrom(...UNSAFE_STRINGS),
  hugeString,
  deepValue,
  protoObject,
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.jsonValue({ maxDepth: 3 }),
);

const cursorValue = fc.constantFrom<unknown>(
  'abc',
  'x:1',
  'ABC:1',
  ':1',
  '',
  '@EPOCH@:0',
  '@EPOCH@:99999999',
  '@EPOCH@:9999999999999999',
  '@EPOCH@:99999999999999999',
  '@EPOCH@:-1',
  '@EPOCH@:1.5',
  '@EPOCH@:0\u0000',
  'zzzz:1',
  5,
  null,
);

const pageTokens: unknown[] = [
  'x'.repeat(513),
  '!!!',
  '',
  b64({ after: 'fz-1', seq: 1 }),
  b64({ after: 5, seq: 1 }),
  b64([]),
  b64({ after: '\ud800', seq: 1 }),
  b64({ after: 'x', seq: 1e300 }),
  b64({ after: 'x', seq: 1.5 }),
  b64({ after: huge('a', 300), seq: 1 }),
];
pageTokens.push(b64({ after: 'a\u0000', seq: 1 }), b64({ after: 'x', seq: -5 }));

const manyEntries = (count: number) => Object.fromEntries(Array.from({ length: count }, (_, i) => [`n${i}`, 1]));

/** Values near what each field takes: one step off (or, now and then, just valid). */
const FIELD_VALUES: Record<string, fc.Arbitrary<unknown>> = {
  mutationId: fc.constantFrom('short', 'm'.repeat(129), 'has space-123', 'a.b.c.d.e.f', 'abcdefgh', 'm-é-123456', ''),
  entityType: fc.constantFrom('a.b', '>', '*', '', 't'.repeat(65), 'ünï', 'notes ', 'NOTES', ...TYPES),
  entityId: fc.oneof(
    fc.constantFrom('x'.repeat(256), '', 'a\u0000', '\ud800x', ' ', '~abc', '🙂'.repeat(128), '🙂'.repeat(129)),
    fc.integer({ min: 257, max: 400 }).map((n) => 'i'.repeat(n)),
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }),
  ),
  op: fc.constantFrom<unknown>('explode', 'DELETE', 'delete', 'patch', 'upsert', null),
  data: fc.oneof(
    fc.constantFrom<unknown>(
      [],
      'str',
      null,
      {},
      { nested: { deeper: [1, 2, { x: null }] } },
      { t: huge('d', 60_000) },
    ),
    deepValue.map((v) => ({ v })),
    protoObject,
    fc.constantFrom(...UNSAFE_STRINGS).map((s) => ({ s })),
    fc.constantFrom(...UNSAFE_STRINGS).map((s) => withKey({}, s, 1)),
    fc.constantFrom(...RAW_NUMBERS).map((text) => ({ n: raw(text) })),
    fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }),
  ),
  baseVersion: fc.constantFrom<unknown>(-1, -0, 1.5, 2 ** 53, raw('1e400'), '0', 1e308, Number.MAX_SAFE_INTEGER, 3),
  vectorClock: fc.constantFrom<unknown>(
    { a: -1 },
    { a: 1.5 },
    { '': 1 },
    { ['k'.repeat(129)]: 1 },
    manyEntries(1025),
    [],
    { a: 2 ** 53 },
    { a: '1' },
    withKey({}, '__proto__', 1),
    withKey({}, 'constructor', 1),
    { fz: Number.MAX_SAFE_INTEGER },
    { 'a\u0000': 1 },
  ),
  hlc: fc.constantFrom(
    '',
    'now',
    '000000000000001:00000:',
    '0000000000000001:00000:n',
    '@HLC_FUTURE@',
    '999999999999999:99999:z',
    '000000000000001:00000:node with space',
    '000000000000001:000000:n',
    `000000000000001:00000:${'n'.repeat(129)}`,
    '000000000000001:00000:fz',
    '000000000000001:00000:a\u0000',
  ),
  clientId: fc.constantFrom('', 'c'.repeat(129), 'ok', 'a\u0000', '\ud800'),
  entityTypes: fc.constantFrom<unknown>(
    [],
    Array.from({ length: 65 }, () => 'notes'),
    ['a.b'],
    'notes',
    [1],
    ['notes', 'notes'],
    ['tasks', 'notes', 'locked'],
    ['t'.repeat(65)],
    [null],
  ),
  cursors: fc.oneof(
    cursorValue.map((cursor) => ({ notes: cursor })),
    cursorValue.map((cursor) => ({ notes: cursor, tasks: cursor })),
    fc.constantFrom<unknown>({ 'a.b': '@EPOCH@:0' }, [], 'x', withKey({}, '__proto__', '@EPOCH@:0')),
  ),
  since: cursorValue,
  sinceVersion: fc.constantFrom<unknown>(-1, 5, 1.5, 2 ** 53),
  limit: fc.constantFrom<unknown>(0, 1001, -1, 1.5, '5', 1000, 1),
  snapshot: fc.constantFrom<unknown>('true', 1, true, false, null),
  pageToken: fc.constantFrom(...pageTokens),
  token: fc.constantFrom(
    '@TOK:same@',
    '@TOK:other-user@',
    '@TOK:other-tenant@',
    '@TOK:expired@',
    '@TOK:bad-sig@',
    '@TOK:alg-none@',
    'garbage',
    '',
    'x'.repeat(8193),
    'a.b.c',
  ),
};

interface FieldEdit {
  readonly field: string;
  readonly value?: unknown;
  readonly remove?: true;
}

function applyEdits(target: Record<string, unknown>, edits: readonly FieldEdit[]): Record<string, unknown> {
  let result = target;
  for (const edit of edits) {
    result = edit.remove ? withoutKey(result, edit.field) : withKey(result, edit.field, edit.value);
  }
  return result;
}

function describeEdits(edits: readonly FieldEdit[]): string {
  return edits.map((e) => (e.remove ? ` -${e.field || '""'}` : ` ${e.field || '""'}=${short(e.value)}`)).join('');
}

/** Edits of one field: a near-valid or a generic bad value, removal, or an unknown key. */
function fieldEdit(fields: readonly string[]): fc.Arbitrary<FieldEdit> {
  const extra = fc.tuple(fc.constantFrom(...EXTRA_KEYS), badValue).map(([field, value]) => ({ field, value }));
  if (fields.length === 0) return extra;
  const field = fc.constantFrom(...fields);
  return fc.oneof(
    {
      weight: 6,
      arbitrary: field.chain((name) =>
        fc
          .oneof({ weight: 3, arbitrary: FIELD_VALUES[name] ?? badValue }, { weight: 1, arbitrary: badValue })
          .map((value): FieldEdit => ({ field: name, value })),
      ),
    },
    { weight: 1, arbitrary: field.map((name): FieldEdit => ({ field: name, remove: true })) },
    { weight: 1, arbitrary: extra },
  );
}

// ---------------------------------------------------------------------------------------------
// WebSocket inputs.

type ClientType = 'mutate' | 'subscribe' | 'unsubscribe' | 'sync' | 'ping' | 'auth';
interface Template {
  readonly type: ClientType;
  readonly payload: Record<string, unknown>;
}

const PAYLOAD_FIELDS: Record<ClientType, readonly string[]> = {
  mutate: Object.keys(clientFrameSchemas.mutate.shape),
  subscribe: Object.keys(clientFrameSchemas.subscribe.shape),
  unsubscribe: Object.keys(clientFrameSchemas.unsubscribe.shape),
  sync: Object.keys(clientFrameSchemas.sync.shape),
  ping: [],
  auth: Object.keys(clientFrameSchemas.auth.shape),
};

const typeArb = fc.constantFrom(...TYPES);
const mutateTemplate = fc
  .record({
    entityType: typeArb,
    entityId: fc.constantFrom(...ENTITY_POOL),
    op: fc.constantFrom('upsert', 'patch', 'delete'),
    clientId: fc.boolean(),
  })
  .map(({ entityType, entityId, op, clientId }): Template => ({
    type: 'mutate',
    payload: {
      mutationId: '@MID@',
      entityType,
      entityId,
      op,
      ...(op === 'delete' ? {} : { data: { title: 'fuzz', n: 1 } }),
      baseVersion: 0,
      vectorClock: { fz: 1 },
      hlc: '@HLC_NOW@',
      ...(clientId ? { clientId: 'fz-client' } : {}),
    },
  }));

/** Valid payloads of every client frame type, to be knocked one step off. */
const templateArb: fc.Arbitrary<Template> = fc.oneof(
  { weight: 4, arbitrary: mutateTemplate },
  {
    weight: 2,
    arbitrary: fc
      .record({
        types: fc.subarray([...TYPES], { minLength: 1 }),
        cursor: fc.constantFrom(undefined, '@EPOCH@:0', 'zzzz:1'),
      })
      .map(({ types, cursor }): Template => ({
        type: 'subscribe',
        payload: {
          entityTypes: types,
          ...(cursor === undefined ? {} : { cursors: Object.fromEntries(types.map((t) => [t, cursor])) }),
        },
      })),
  },
  {
    weight: 1,
    arbitrary: fc
      .subarray([...TYPES], { minLength: 1 })
      .map((types): Template => ({ type: 'unsubscribe', payload: { entityTypes: types } })),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        typeArb,
        fc.constantFrom<Record<string, unknown>>(
          { limit: 5 },
          { since: '@EPOCH@:0', limit: 20 },
          { snapshot: true, limit: 3 },
          { snapshot: true, pageToken: b64({ after: 'fz-1', seq: 1 }) },
          { entityId: 'fz-1', sinceVersion: 0 },
        ),
      )
      .map(([entityType, rest]): Template => ({ type: 'sync', payload: { entityType, ...rest } })),
  },
  { weight: 1, arbitrary: fc.constant<Template>({ type: 'ping', payload: {} }) },
  { weight: 1, arbitrary: fc.constant<Template>({ type: 'auth', payload: { token: '@TOK:same@' } }) },
);

type IdMode = 'fresh' | 'long' | 'unsafe' | 'absent' | 'empty' | { readonly wrong: unknown };
const idModeArb: fc.Arbitrary<IdMode> = fc.oneof(
  { weight: 12, arbitrary: fc.constant<IdMode>('fresh') },
  { weight: 1, arbitrary: fc.constantFrom<IdMode>('long', 'unsafe', 'absent', 'empty') },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(5, null, {}, [], true).map((wrong): IdMode => ({ wrong })) },
);

const envelopeEditArb: fc.Arbitrary<FieldEdit> = fc.oneof(
  fc
    .constantFrom<unknown>(
      5,
      null,
      '',
      't'.repeat(65),
      'Subscribe',
      '__proto__',
      'constructor',
      'toString',
      'hasOwnProperty',
      'drop_tables',
      'welcome',
      'error',
      'delta',
    )
    .map((value) => ({ field: 'type', value })),
  fc.constantFrom<unknown>(-1, '1', null, raw('1e400'), 1e308, 1.5, 0).map((value) => ({ field: 'timestamp', value })),
  fc.constantFrom('type', 'timestamp', 'payload').map((field): FieldEdit => ({ field, remove: true })),
  fc.constantFrom<unknown>(null, [], 'x', 0).map((value) => ({ field: 'payload', value })),
  fc.tuple(fc.constantFrom(...EXTRA_KEYS), badValue).map(([field, value]) => ({ field, value })),
);

type WsCase =
  | {
      readonly kind: 'frame';
      readonly label: string;
      readonly frame: Record<string, unknown>;
      readonly idMode: IdMode;
      readonly binary: boolean;
    }
  | {
      readonly kind: 'truncated';
      readonly label: string;
      readonly frame: Record<string, unknown>;
      readonly cut: number;
    }
  | {
      readonly kind: 'badUtf8';
      readonly label: string;
      readonly frame: Record<string, unknown>;
      readonly at: number;
      readonly bytes: readonly number[];
    }
  | { readonly kind: 'text'; readonly label: string; readonly text: string }
  | { readonly kind: 'bytes'; readonly label: string; readonly bytes: Uint8Array };

const nearValidFrame: fc.Arbitrary<WsCase> = templateArb.chain((template) =>
  fc
    .record({
      edits: fc.array(fieldEdit(PAYLOAD_FIELDS[template.type]), { minLength: 0, maxLength: 2 }),
      envelope: fc.oneof({ weight: 5, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: envelopeEditArb }),
      idMode: idModeArb,
      binary: fc.oneof({ weight: 6, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    })
    .map(({ edits, envelope, idMode, binary }): WsCase => {
      const base = { type: template.type, payload: applyEdits(template.payload, edits), timestamp: 1 };
      const frame = envelope ? applyEdits(base, [envelope]) : base;
      const label = `${template.type}${describeEdits(edits)}${envelope ? ` envelope${describeEdits([envelope])}` : ''}`;
      return { kind: 'frame', label, frame, idMode, binary };
    }),
);

const INVALID_UTF8 = [[0xff], [0xc3], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xc0, 0xaf], [0xfe, 0xfe]];

const wsCaseArb: fc.Arbitrary<WsCase> = fc.oneof(
  { weight: 14, arbitrary: nearValidFrame },
  {
    weight: 2,
    arbitrary: fc
      .oneof(
        fc.string({ unit: 'grapheme', maxLength: 80 }),
        fc.string({ unit: 'binary', maxLength: 80 }),
        fc.constantFrom(
          '',
          ' ',
          'null',
          '{',
          '}',
          '{"type":',
          'undefined',
          'NaN',
          '{"type":"ping","payload":{},"timestamp":1}x',
        ),
      )
      .map((text): WsCase => ({ kind: 'text', label: 'text', text })),
  },
  {
    weight: 1,
    arbitrary: fc.uint8Array({ maxLength: 120 }).map((bytes): WsCase => ({ kind: 'bytes', label: 'bytes', bytes })),
  },
  {
    weight: 1,
    arbitrary: fc
      .oneof(
        fc
          .jsonValue({ maxDepth: 2 })
          .filter((value) => !isJsonObject(value))
          .map((value) => JSON.stringify(value)),
        fc.constantFrom('[{"type":"ping","payload":{},"timestamp":1}]', '"ping"', '42', 'true', 'null', '[]'),
      )
      .map((text): WsCase => ({ kind: 'text', label: 'non-object JSON', text })),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(templateArb, fc.double({ min: 0, max: 0.99, noNaN: true })).map(([t, cut]): WsCase => ({
      kind: 'truncated',
      label: `${t.type} truncated`,
      frame: { type: t.type, payload: t.payload, timestamp: 1 },
      cut,
    })),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(templateArb, fc.double({ min: 0, max: 1, noNaN: true }), fc.constantFrom(...INVALID_UTF8))
      .map(([t, at, bytes]): WsCase => ({
        kind: 'badUtf8',
        label: `${t.type} with invalid UTF-8`,
        frame: { type: t.type, payload: t.payload, timestamp: 1 },
        at,
        bytes,
      })),
  },
);

interface SentFrame {
  readonly label: string;
  readonly data: string | Buffer;
  /** The id the gateway echoes (`id` or `payload.ref`) when the input carries one of ours. */
  readonly ref: string | undefined;
  readonly verdict: Verdict;
}

let frameIds = 0;
function renderWs(input: WsCase, ctx: RenderContext, maxFrameBytes: number): SentFrame {
  let data: string | Buffer;
  let ref: string | undefined;
  switch (input.kind) {
    case 'text':
      data = input.text;
      break;
    case 'bytes':
      data = Buffer.from(input.bytes);
      break;
    case 'truncated': {
      const text = fill(toJson(input.frame), ctx);
      data = text.slice(0, Math.floor(text.length * input.cut));
      break;
    }
    case 'badUtf8': {
      const text = fill(toJson(input.frame), ctx);
      const at = Math.floor(text.length * input.at);
      data = Buffer.concat([Buffer.from(text.slice(0, at)), Buffer.from(input.bytes), Buffer.from(text.slice(at))]);
      break;
    }
    case 'frame': {
      const id = `fz-${++frameIds}`;
      const { idMode } = input;
      let frame: Record<string, unknown> = input.frame;
      if (idMode === 'fresh') frame = withKey(frame, 'id', id);
      else if (idMode === 'long') frame = withKey(frame, 'id', `${id}-${'L'.repeat(200)}`);
      else if (idMode === 'unsafe') frame = withKey(frame, 'id', `${id}\u0000\ud800`);
      else if (idMode === 'empty') frame = withKey(frame, 'id', '');
      else if (typeof idMode === 'object') frame = withKey(frame, 'id', idMode.wrong);
      const text = fill(toJson(frame), ctx);
      data = input.binary ? Buffer.from(text) : text;
      const echoed = typeof frame['id'] === 'string' ? frame['id'].slice(0, 128) : undefined;
      if (echoed?.startsWith(id)) ref = echoed;
      break;
    }
  }
  const verdict = judgeFrame(Buffer.from(data), maxFrameBytes);
  // Frames over the size limit are refused unread: the error cannot name their id.
  if (verdict.id !== ref) ref = undefined;
  return { label: input.label, data, ref, verdict };
}

// ---------------------------------------------------------------------------------------------
// The oracle: what the contracts say the gateway must answer to a frame.

interface Verdict {
  /** Set when the frame is invalid: it gets exactly one `error` with one of these codes. */
  readonly refusal?: ReadonlySet<string>;
  /** A valid frame's type. */
  readonly type?: ClientType;
  /** A valid `subscribe`: its distinct entity types (each may get its own error). */
  readonly entityTypes?: number;
  /** The `id` the gateway echoes (its first 128 characters). */
  readonly id?: string;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function judgeFrame(bytes: Buffer, maxFrameBytes: number): Verdict {
  if (bytes.byteLength > maxFrameBytes) return { refusal: new Set([ErrorCode.FRAME_TOO_LARGE]) };
  let parsed: unknown;
  try {
    parsed = JSON.parse(strictUtf8.decode(bytes));
  } catch {
    return { refusal: new Set([ErrorCode.BAD_FRAME]) };
  }
  if (!isJsonObject(parsed)) return { refusal: new Set([ErrorCode.BAD_FRAME]) };
  const rawId = parsed['id'];
  const idPart = typeof rawId === 'string' ? { id: rawId.slice(0, 128) } : {};
  // Every check that fails may be the one reported, whatever order the gateway checks in.
  const codes = new Set<string>();
  if (findUnsafeJson(parsed)) codes.add(ErrorCode.UNSAFE_INPUT);
  const envelope = envelopeSchema.safeParse(parsed);
  if (!envelope.success) codes.add(ErrorCode.VALIDATION_FAILED);
  else if (!isClientFrameType(envelope.data.type)) codes.add(ErrorCode.UNKNOWN_TYPE);
  else if (!clientFrameSchemas[envelope.data.type].safeParse(envelope.data.payload).success)
    codes.add(ErrorCode.VALIDATION_FAILED);
  if (codes.size > 0 || !envelope.success) return { refusal: codes, ...idPart };
  const type = envelope.data.type as ClientType;
  if (type !== 'subscribe') return { type, ...idPart };
  const { entityTypes } = clientFrameSchemas.subscribe.parse(envelope.data.payload);
  return { type, entityTypes: new Set(entityTypes).size, ...idPart };
}

/** What a valid frame may get instead of its normal reply, by type. */
const SEMANTIC_ERRORS: Record<ClientType, readonly ErrorCode[]> = {
  subscribe: [ErrorCode.INVALID_CURSOR, ErrorCode.LIMIT_EXCEEDED, ErrorCode.FORBIDDEN, ErrorCode.UNAVAILABLE],
  unsubscribe: [],
  mutate: [ErrorCode.FORBIDDEN, ErrorCode.INVALID_IDENTIFIER, ErrorCode.CLOCK_SKEW, ErrorCode.UNAVAILABLE],
  sync: [ErrorCode.FORBIDDEN, ErrorCode.INVALID_CURSOR, ErrorCode.VALIDATION_FAILED, ErrorCode.UNAVAILABLE],
  ping: [],
  auth: [ErrorCode.AUTH_INVALID, ErrorCode.AUTH_EXPIRED, ErrorCode.FORBIDDEN],
};
const NORMAL_REPLIES: Record<ClientType, readonly string[]> = {
  subscribe: ['subscribed', 'sync_required'],
  unsubscribe: ['unsubscribed'],
  mutate: ['ack'],
  sync: ['sync_response', 'sync_required'],
  ping: ['pong'],
  auth: ['auth_renewed'],
};
/** Frames the gateway sends on its own, answering nothing. */
const UNSOLICITED = new Set(['welcome', 'delta', 'auth_expiring']);

type AnyFrame = { readonly type: string; readonly id?: string; readonly payload: Record<string, unknown> };
const asAny = (frame: Frame) => frame as unknown as AnyFrame;
const codeOf = (frame: AnyFrame) => String(frame.payload['code']);
const refOf = (frame: AnyFrame) => frame.id ?? (frame.payload['ref'] as string | undefined);
const isOutcomeAck = (frame: AnyFrame) => frame.type === 'ack' && frame.payload['status'] !== 'accepted';

function describeFrames(frames: readonly AnyFrame[]): string {
  return `[${frames.map((f) => (f.type === 'error' ? `error(${codeOf(f)}: ${String(f.payload['message'])})` : f.type)).join(', ')}]`;
}

/** Cursors in normal replies must be cursors a client can send back. */
function malformedCursors(frame: AnyFrame): string[] {
  const cursors: unknown[] = [];
  if (frame.type === 'subscribed') {
    for (const s of (frame.payload['subscriptions'] as Array<{ cursor: unknown }> | undefined) ?? [])
      cursors.push(s.cursor);
  }
  if (frame.type === 'sync_response') {
    cursors.push(frame.payload['cursor']);
    for (const c of (frame.payload['changes'] as Array<{ cursor?: unknown }> | undefined) ?? [])
      if (c.cursor !== undefined) cursors.push(c.cursor);
  }
  return cursors.filter((c) => !cursorSchema.safeParse(c).success).map((c) => JSON.stringify(c));
}

/** Why the frames answering one input break the protocol, or undefined. */
function checkAnswer(sent: SentFrame, frames: readonly AnyFrame[]): string | undefined {
  if (frames.length === 0) return 'no answer';
  const errors = frames.filter((f) => f.type === 'error');
  const bad = errors.find((f) => !ERROR_CODES.has(codeOf(f)) || codeOf(f) === ErrorCode.INTERNAL);
  if (bad) return `error code ${codeOf(bad)} (${String(bad.payload['message'])})`;
  const { refusal, type } = sent.verdict;
  if (refusal) {
    if (frames.length !== 1 || errors.length !== 1) return `expected exactly one error, got ${describeFrames(frames)}`;
    const code = codeOf(errors[0] as AnyFrame);
    return refusal.has(code) ? undefined : `expected one of ${[...refusal].join('|')}, got ${code}`;
  }
  if (!type) return 'no verdict';
  const normal = frames.filter((f) => f.type !== 'error');
  const wrongType = normal.find((f) => !NORMAL_REPLIES[type].includes(f.type));
  if (wrongType) return `unexpected reply ${wrongType.type} to ${type}`;
  const wrongCode = errors.find((f) => !SEMANTIC_ERRORS[type].includes(codeOf(f) as ErrorCode));
  if (wrongCode) return `a valid ${type} got ${codeOf(wrongCode)} (${String(wrongCode.payload['message'])})`;
  for (const frame of normal) {
    const cursors = malformedCursors(frame);
    if (cursors.length > 0) return `${frame.type} carries malformed cursor(s) ${cursors.join(', ')}`;
  }
  if (type === 'subscribe') {
    const perType = errors.length + normal.filter((f) => f.type === 'sync_required').length;
    const subscribed = normal.filter((f) => f.type === 'subscribed').length;
    if (perType > (sent.verdict.entityTypes ?? 1) || subscribed > 1)
      return `too many answers to one subscribe: ${describeFrames(frames)}`;
    return undefined;
  }
  if (type === 'mutate') {
    // `accepted` and the final ack, in either order (the final one rarely comes first).
    const accepted = normal.filter((f) => f.payload['status'] === 'accepted').length;
    if (errors.length > 0 && normal.length > 0) return `both an error and an ack: ${describeFrames(frames)}`;
    if (errors.length > 1 || accepted > 1 || normal.length - accepted > 1)
      return `too many answers: ${describeFrames(frames)}`;
    if (normal.length > 0 && accepted === 0) return `a final ack without "accepted": ${describeFrames(frames)}`;
    return undefined;
  }
  return frames.length === 1 ? undefined : `expected exactly one answer, got ${describeFrames(frames)}`;
}

/** Whether an input got its answer; a mutation that got an ack also waits for its `accepted`. */
function isAnswered(sent: SentFrame, frames: readonly AnyFrame[]): boolean {
  if (sent.verdict.type !== 'mutate') return frames.length > 0;
  return frames.some((f) => f.type === 'error' || f.payload['status'] === 'accepted');
}

/** How many answers without a known id an input that carries none may get. */
function answerBounds(sent: SentFrame): [number, number] {
  const { type, entityTypes } = sent.verdict;
  if (type === 'subscribe') return [1, 2 * (entityTypes ?? 1) + 1];
  return [1, 1];
}

// ---------------------------------------------------------------------------------------------
// HTTP inputs.

type AuthMode = 'ok' | 'none' | 'garbage' | 'expired' | 'basic' | 'lowercase' | 'query';
type HttpBody =
  { readonly json: unknown } | { readonly text: string } | { readonly bytes: Uint8Array } | { readonly sized: number };

type HttpCase =
  | {
      readonly kind: 'post';
      readonly label: string;
      readonly auth: AuthMode;
      readonly contentType: string | undefined;
      readonly encoding: string | undefined;
      readonly body: HttpBody;
    }
  | {
      readonly kind: 'changes' | 'sse';
      readonly label: string;
      readonly auth: AuthMode;
      readonly query: string;
      readonly lastEventId: string | undefined;
    };

const authArb = fc.oneof(
  { weight: 8, arbitrary: fc.constant<AuthMode>('ok') },
  { weight: 1, arbitrary: fc.constantFrom<AuthMode>('none', 'garbage', 'expired', 'basic', 'lowercase') },
);
const mutateItem = mutateTemplate.chain((template) =>
  fc
    .array(fieldEdit(PAYLOAD_FIELDS.mutate), { minLength: 0, maxLength: 2 })
    .map((edits) => applyEdits(template.payload, edits)),
);
/** The one item of a body padded to a given size. */
const SIZED_ITEM = {
  mutationId: '@MID@',
  entityType: 'notes',
  entityId: 'fz-1',
  op: 'upsert',
  baseVersion: 0,
  vectorClock: { fz: 1 },
  hlc: '@HLC_NOW@',
};
const postBodyArb: fc.Arbitrary<{ label: string; body: HttpBody }> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc
      .array(fc.oneof({ weight: 6, arbitrary: mutateItem }, { weight: 1, arbitrary: badValue }), { maxLength: 8 })
      .map((items) => ({ label: `${items.length} items`, body: { json: { mutations: items } } })),
  },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom<unknown>(
        [],
        {},
        { mutations: 'x' },
        { mutations: {} },
        { mutations: null },
        { mutations: Array.from({ length: 101 }, () => ({})) },
        withKey({ mutations: [{}] }, '__proto__', { admin: true }),
        withKey({ mutations: [{}] }, 'constructor', { admin: true }),
        { mutations: [{}], extra: 1 },
        { mutations: [deep(40, 'object')] },
        5,
        'str',
        null,
        true,
        [{ mutations: [] }],
      )
      .map((json) => ({ label: `envelope ${short(json)}`, body: { json } })),
  },
  {
    weight: 1,
    arbitrary: fc
      .oneof(
        fc.string({ unit: 'binary', maxLength: 200 }),
        fc.constantFrom('', '{', '{"mutations": [', 'null', '\ufeff{"mutations":[]}'),
      )
      .map((text) => ({ label: 'text', body: { text } })),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes) => ({ label: 'bytes', body: { bytes } })) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom(33, 1_000, 200_000), fc.constantFrom('object' as const, 'array' as const), fc.boolean())
      .map(([depth, kind, wrapped]) => ({
        label: `${depth} deep ${kind}${wrapped ? ' item' : ''}`,
        body: { json: wrapped ? { mutations: [deep(depth, kind)] } : deep(depth, kind) },
      })),
  },
  {
    weight: 1,
    arbitrary: fc
      .oneof(
        fc.integer({ min: HTTP_BODY_LIMIT - 256, max: HTTP_BODY_LIMIT + 256 }),
        fc.constant(HTTP_BODY_LIMIT + 300_000),
      )
      .map((size) => ({ label: `body of ${size} bytes`, body: { sized: size } })),
  },
);
const postCaseArb: fc.Arbitrary<HttpCase> = fc
  .record({
    auth: authArb,
    contentType: fc.oneof(
      { weight: 8, arbitrary: fc.constant<string | undefined>('application/json') },
      {
        weight: 1,
        arbitrary: fc.constantFrom<string | undefined>(
          undefined,
          'text/plain',
          'application/x-www-form-urlencoded',
          'application/json; charset=latin1',
          'application/json; charset=utf-16',
          'multipart/form-data; boundary=x',
          'application/vnd.api+json',
          'APPLICATION/JSON',
          'application/json;;;',
        ),
      },
    ),
    encoding: fc.oneof(
      { weight: 12, arbitrary: fc.constant<string | undefined>(undefined) },
      { weight: 1, arbitrary: fc.constantFrom<string | undefined>('gzip', 'deflate', 'br', 'identity', 'x-unknown') },
    ),
    body: postBodyArb,
  })
  .map(({ auth, contentType, encoding, body }) => ({
    kind: 'post' as const,
    label: `POST ${body.label} (${auth}, ${contentType ?? 'no type'}${encoding ? `, ${encoding}` : ''})`,
    auth,
    contentType,
    encoding,
    body: body.body,
  }));

const QUERY_VALUES = [
  ...TYPES,
  'notes,tasks',
  'notes,,',
  ',',
  'a.b',
  't'.repeat(65),
  'notes,'.repeat(70),
  'created',
  'created,deleted',
  'nope',
  'fz-1',
  '@EPOCH@:0',
  '@EPOCH@:99999999',
  'zzzz:1',
  'abc',
  '0',
  '1',
  '1000',
  '1001',
  '-1',
  '1.5',
  '1e3',
  '0x10',
  ' 5',
  'a\u0000b',
  '\ud800',
  'x'.repeat(3000),
  '@TOK:same@',
  'garbage',
  '',
];
type QueryPair = readonly [key: string, value: string];
const JUNK_KEYS = ['foo', '__proto__', 'constructor', 'entityType[]', 'since[a]', ''];
const queryValueArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...QUERY_VALUES) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
);
const encodeArb = fc.oneof({ weight: 6, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) });
const joinQuery = (pairs: readonly QueryPair[], encode: boolean) =>
  pairs.map(([key, value]) => `${queryPart(key, encode)}=${queryPart(value, encode)}`).join('&');

/** Query strings: a valid one with a pair changed, removed or repeated; random pairs; or junk. */
const queryArb = (valid: fc.Arbitrary<QueryPair[]>, keys: readonly string[]): fc.Arbitrary<string> => {
  const key = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...keys) },
    { weight: 1, arbitrary: fc.constantFrom(...JUNK_KEYS) },
  );
  const edit = fc.record({ op: fc.constantFrom('set', 'remove', 'add'), key, value: queryValueArb });
  return fc.oneof(
    {
      weight: 5,
      arbitrary: fc.tuple(valid, fc.array(edit, { maxLength: 2 }), encodeArb).map(([pairs, edits, encode]) => {
        let result: QueryPair[] = pairs;
        for (const { op, key: name, value } of edits) {
          if (op === 'remove') result = result.filter(([k]) => k !== name);
          else if (op === 'add' || !result.some(([k]) => k === name)) result = [...result, [name, value]];
          else result = result.map(([k, v]) => (k === name ? [k, value] : [k, v]));
        }
        return joinQuery(result, encode);
      }),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.array(fc.tuple(key, queryValueArb), { maxLength: 5 }), encodeArb)
        .map(([pairs, encode]) => joinQuery(pairs, encode)),
    },
    {
      weight: 1,
      arbitrary: fc
        .array(
          fc.constantFrom(
            '%',
            '&',
            '=',
            'a',
            '[',
            ']',
            '+',
            '?',
            '%00',
            '%zz',
            '%E0%A4%A',
            '%ud800',
            'entityType=',
            'entityTypes=',
            'notes',
            'since=',
            ';',
          ),
          { maxLength: 12 },
        )
        .map((parts) => parts.join('')),
    },
  );
};

const validChangesQuery: fc.Arbitrary<QueryPair[]> = fc
  .record({
    type: typeArb,
    since: fc.constantFrom(undefined, '@EPOCH@:0'),
    limit: fc.constantFrom(undefined, '5', '1000'),
  })
  .map(({ type, since, limit }) => [
    ['entityType', type],
    ...(since === undefined ? [] : [['since', since] as const]),
    ...(limit === undefined ? [] : [['limit', limit] as const]),
  ]);
const validSseQuery: fc.Arbitrary<QueryPair[]> = fc
  .record({
    types: fc.constantFrom('notes', 'notes,tasks', 'locked'),
    entityId: fc.constantFrom(undefined, 'fz-1'),
    events: fc.constantFrom(undefined, 'created', 'created,deleted'),
    lastEventId: fc.constantFrom(undefined, '@EPOCH@:0'),
  })
  .map(({ types, entityId, events, lastEventId }) => [
    ['entityTypes', types],
    ...(entityId === undefined || types.includes(',') ? [] : [['entityId', entityId] as const]),
    ...(events === undefined ? [] : [['events', events] as const]),
    ...(lastEventId === undefined ? [] : [['lastEventId', lastEventId] as const]),
  ]);

function queryPart(text: string, encode: boolean): string {
  if (!encode) return text.replaceAll('#', '%23');
  try {
    return encodeURIComponent(text);
  } catch {
    return text.replaceAll('#', '%23'); // a lone surrogate: sent as it is, the URL parser replaces it
  }
}

const getCaseArb: fc.Arbitrary<HttpCase> = fc.oneof(
  fc
    .record({ auth: authArb, query: queryArb(validChangesQuery, ['entityType', 'since', 'limit']) })
    .map(({ auth, query }) => ({
      kind: 'changes' as const,
      label: `GET changes ?${query.slice(0, 120)} (${auth})`,
      auth,
      query,
      lastEventId: undefined,
    })),
  fc
    .record({
      auth: fc.oneof({ weight: 3, arbitrary: authArb }, { weight: 1, arbitrary: fc.constant<AuthMode>('query') }),
      query: queryArb(validSseQuery, ['entityTypes', 'entityId', 'events', 'lastEventId', 'access_token']),
      lastEventId: fc.oneof(
        { weight: 4, arbitrary: fc.constant<string | undefined>(undefined) },
        {
          weight: 1,
          arbitrary: fc.constantFrom<string | undefined>('@EPOCH@:0', '@EPOCH@:99999999', 'zzzz:1', 'garbage', '', ' '),
        },
      ),
    })
    .map(({ auth, query, lastEventId }) => ({
      kind: 'sse' as const,
      label: `GET sse ?${query.slice(0, 120)}${lastEventId === undefined ? '' : ` Last-Event-ID=${lastEventId}`} (${auth})`,
      auth,
      query,
      lastEventId,
    })),
);

const httpCaseArb: fc.Arbitrary<HttpCase> = fc.oneof(
  { weight: 3, arbitrary: postCaseArb },
  { weight: 2, arbitrary: getCaseArb },
);

// ---------------------------------------------------------------------------------------------
// NATS inputs: messages on MUTATIONS subjects of the fuzz tenant.

const NATS_FIELDS = Object.keys(mutationMessageSchema.shape);
const NATS_FIELD_VALUES: Record<string, fc.Arbitrary<unknown>> = {
  tenant: fc.constantFrom('other', 'a.b', '', 't'.repeat(65), CANARY_TENANT, '*'),
  userId: fc.constantFrom('', 'u'.repeat(257)),
  mutationId: fc.constantFrom('', 'm'.repeat(129), 'a\u0000b', '\ud800', 'x'),
  clientId: fc.constantFrom('', 'c'.repeat(257), 'a\u0000', '\udfff'),
  vectorClock: fc.constantFrom<unknown>({ 'a\u0000': 1 }, { '\ud800': 1 }, { a: -1 }, [], { a: 2 ** 53 }),
};
type NatsSubject = 'own' | 'other-entity' | 'other-type';
type NatsCase =
  | { readonly kind: 'bytes'; readonly label: string; readonly bytes: Uint8Array }
  | { readonly kind: 'text'; readonly label: string; readonly text: string }
  | {
      readonly kind: 'message';
      readonly label: string;
      readonly message: Record<string, unknown>;
      readonly subject: NatsSubject;
    };

const natsTemplate = fc.constantFrom('upsert', 'patch', 'delete').map((op) => ({
  mutationId: '@MID@',
  tenant: TENANT,
  userId: 'svc',
  clientId: 'svc',
  entityType: 'notes',
  entityId: '@NID@',
  op,
  ...(op === 'delete' ? {} : { data: { source: 'nats' } }),
  baseVersion: 0,
  vectorClock: { svc: 1 },
  hlc: '@HLC_NOW@',
}));
const natsFieldEdit: fc.Arbitrary<FieldEdit> = fc.oneof(
  { weight: 4, arbitrary: fieldEdit(NATS_FIELDS) },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom(...Object.keys(NATS_FIELD_VALUES))
      .chain((field) =>
        (NATS_FIELD_VALUES[field] as fc.Arbitrary<unknown>).map((value): FieldEdit => ({ field, value })),
      ),
  },
);
const natsCaseArb: fc.Arbitrary<NatsCase> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.uint8Array({ maxLength: 300 }).map((bytes): NatsCase => ({ kind: 'bytes', label: 'bytes', bytes })),
  },
  {
    weight: 1,
    arbitrary: fc
      .oneof(
        fc.string({ unit: 'binary', maxLength: 200 }),
        fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
      )
      .map((text): NatsCase => ({ kind: 'text', label: 'text', text })),
  },
  {
    weight: 7,
    arbitrary: fc
      .record({
        template: natsTemplate,
        edits: fc.array(natsFieldEdit, { minLength: 0, maxLength: 2 }),
        subject: fc.oneof(
          { weight: 4, arbitrary: fc.constant<NatsSubject>('own') },
          { weight: 1, arbitrary: fc.constantFrom<NatsSubject>('other-entity', 'other-type') },
        ),
      })
      .map(({ template, edits, subject }): NatsCase => ({
        kind: 'message',
        label: `message${describeEdits(edits)} on ${subject} subject`,
        message: applyEdits(template, edits),
        subject,
      })),
  },
);

const looseUtf8 = new TextDecoder();
const hasBadText = (text: unknown) =>
  typeof text === 'string' &&
  (text.includes('\u0000') || /[\uD800-\uDFFF]/.test(text.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, '')));

/**
 * Whether the worker must refuse a message (what the contract says), or undefined when it is a
 * valid mutation after all. Strings PostgreSQL cannot store in the change log (NUL, lone
 * surrogates in the mutation id, client id or clock) are refused by the database.
 */
function natsRefusal(subject: string, data: Uint8Array, subjects: Subjects): string | undefined {
  let body: unknown;
  try {
    body = JSON.parse(looseUtf8.decode(data));
  } catch {
    return 'not valid JSON';
  }
  const parsed = mutationMessageSchema.safeParse(body);
  if (!parsed.success) return 'schema';
  const m = parsed.data;
  if (subject !== subjects.mutation(m.tenant, m.entityType, m.entityId)) return 'subject';
  if ([m.mutationId, m.clientId, ...Object.keys(m.vectorClock)].some(hasBadText)) return 'refused by the database';
  return undefined;
}

// ---------------------------------------------------------------------------------------------

interface EntityKey {
  readonly tenant: string;
  readonly entityType: string;
  readonly entityId: string;
}
const keyOf = (k: EntityKey) => JSON.stringify([k.tenant, k.entityType, k.entityId]);

class Tally {
  private readonly counts = new Map<string, number>();
  add(key: string, by = 1): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + by);
  }
  get total(): number {
    return [...this.counts.values()].reduce((a, b) => a + b, 0);
  }
  toString(): string {
    return [...this.counts.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([key, count]) => `${key} ${count}`)
      .join(', ');
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('fuzzing every edge: bad input is contained (I7)', () => {
  let system: TestSystem;
  let ctx: RenderContext;
  let fuzzToken: string;
  let bystander: TestClient;
  let nc: NatsConnection;
  let js: JetStreamClient;
  const pids = new Map<string, number | undefined>();
  const canaryRows: unknown[] = [];
  /** Entities the system may hold: canaries and whatever an input was accepted for. */
  const acceptedKeys = new Set<string>();
  /** Mutation ids of the fuzz tenant that were accepted: each must reach the ledger. */
  const acceptedMutations = new Set<string>();
  const tallies = { ws: new Tally(), http: new Tally(), nats: new Tally() };
  const inputs = { ws: 0, http: 0, nats: 0 };
  const timings: string[] = [];
  const bystanderRtts: number[] = [];
  const codeStatuses = new Map<string, Set<number>>();
  const started = Date.now();

  const services: ServiceName[] = ['gateway', 'sync-worker', 'conflict-service'];
  function assertAllRunning(): void {
    for (const service of services) {
      for (let i = 0; i < system.count(service); i++) {
        if (!system.isRunning(service, i)) {
          const tail = system.logs(service, i, 25).join('\n  | ');
          throw new Error(`${service} #${i} is no longer running; last output:\n  | ${tail}`);
        }
      }
    }
  }

  async function canaryState(): Promise<unknown[]> {
    const rows: unknown[] = [];
    for (const c of CANARIES) {
      rows.push(
        ...(await system.query(
          `SELECT e.tenant, e.entity_type, e.entity_id, e.version, e.data, e.deleted, e.vector_clock, e.hlc, e.updated_at,
                  (SELECT count(*) FROM changes ch WHERE ch.tenant = e.tenant AND ch.entity_type = e.entity_type
                      AND ch.entity_id = e.entity_id) AS changes
             FROM entities e WHERE e.tenant = $1 AND e.entity_type = $2 AND e.entity_id = $3`,
          [c.tenant, c.entityType, c.entityId],
        )),
      );
    }
    return rows;
  }

  beforeAll(async () => {
    console.log(`fuzz seed ${SEED} (FUZZ_SEED=${SEED} reproduces this run)`);
    system = await TestSystem.start({ gateways: 1 });
    const url = system.gateways[0]!.url;
    const permissions = { read: ['*'], write: ['notes', 'tasks'] };
    fuzzToken = await system.mintToken({ sub: 'fuzzer', tenant: TENANT, claims: { permissions } });
    const same = await system.mintToken({ sub: 'fuzzer', tenant: TENANT, claims: { permissions } });
    const [header, claims] = same.split('.');
    const signature = same.split('.')[2] ?? '';
    const flipped = signature.slice(0, 10) + (signature[10] === 'A' ? 'B' : 'A') + signature.slice(11);
    const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${claims}.`;
    ctx = {
      epoch: '',
      tokens: {
        same,
        'other-user': await system.mintToken({ sub: 'someone-else', tenant: TENANT }),
        'other-tenant': await system.mintToken({ sub: 'fuzzer', tenant: 'elsewhere' }),
        expired: await system.mintToken({ sub: 'fuzzer', tenant: TENANT, expiresIn: -60 }),
        'bad-sig': `${header}.${claims}.${flipped}`,
        'alg-none': none,
      },
    };

    // Canaries, written the normal way before any fuzzing.
    const keeper = await TestClient.connect(url, await system.mintToken({ sub: 'keeper', tenant: TENANT }));
    const canaryWriter = await TestClient.connect(
      url,
      await system.mintToken({ sub: 'keeper', tenant: CANARY_TENANT }),
    );
    for (const [client, canary] of [
      [canaryWriter, CANARIES[0]],
      [keeper, CANARIES[1]],
    ] as const) {
      const id = mutationId();
      const reply = await client.request('mutate', {
        mutationId: id,
        entityType: canary.entityType,
        entityId: canary.entityId,
        op: 'upsert',
        data: { canary: true, note: 'must never change' },
        baseVersion: 0,
        vectorClock: { keeper: 1 },
        hlc: hlcNow('keeper'),
      });
      expect(reply.type).toBe('ack');
      expect((await client.waitForOutcome(id)).payload.status).toBe('applied');
      acceptedKeys.add(keyOf(canary));
    }
    const subscribed = await keeper.request('subscribe', { entityTypes: ['notes'] });
    const cursor = (subscribed.payload as unknown as { subscriptions: Array<{ cursor: string }> }).subscriptions[0]!
      .cursor;
    ctx = { ...ctx, epoch: cursor.split(':')[0] as string };
    await keeper.close();
    await canaryWriter.close();
    canaryRows.push(...(await canaryState()));
    expect(canaryRows).toHaveLength(CANARIES.length);

    // A bystander of another tenant: it must see nothing of the fuzz traffic and keep answering.
    bystander = await TestClient.connect(url, await system.mintToken({ sub: 'bystander', tenant: CANARY_TENANT }));
    await bystander.request('subscribe', { entityTypes: [...TYPES] });

    for (const service of services)
      for (let i = 0; i < system.count(service); i++) pids.set(`${service}#${i}`, system.instance(service, i).pid);
    nc = await connectNats({ servers: NATS_URL, name: 'syncline-fuzz' });
    js = jetstream(nc);
  });

  afterAll(async () => {
    const lines = [
      `fuzz seed ${SEED}: ${Math.round((Date.now() - started) / 100) / 10} s in all (${timings.join(', ')})`,
      `  WebSocket: ${inputs.ws} frames, ${tallies.ws.total} answers: ${tallies.ws}`,
      `  HTTP: ${inputs.http} requests: ${tallies.http}`,
      `  NATS: ${inputs.nats} messages published: ${tallies.nats}`,
      `  bystander ping round trips: max ${Math.max(0, ...bystanderRtts)} ms over ${bystanderRtts.length} pings`,
    ];
    if (system) {
      for (const service of services) {
        const errors = new Tally();
        for (const line of system.logs(service, 0)) {
          if (!line.startsWith('{') || !/"level":(50|60)/.test(line)) continue;
          let record: { msg?: string; err?: { message?: string } };
          try {
            record = JSON.parse(line) as typeof record;
          } catch {
            continue;
          }
          errors.add(`"${record.msg}"${record.err?.message ? ` (${record.err.message.slice(0, 80)})` : ''}`);
        }
        if (errors.total > 0) lines.push(`  ${service} error logs among its last 200 lines: ${errors}`);
      }
    }
    console.log(lines.join('\n'));
    await bystander?.close().catch(() => undefined);
    await nc?.close().catch(() => undefined);
    await system?.stop();
  });

  /** The bystander still gets a pong, and how long it took. */
  async function pingBystander(): Promise<void> {
    const sentAt = Date.now();
    const pong = await bystander.request('ping', {}, { timeoutMs: 5_000 });
    expect(pong.type).toBe('pong');
    bystanderRtts.push(Date.now() - sentAt);
  }

  it('answers every WebSocket frame with one stable error code, or a normal reply', async () => {
    const phaseStart = Date.now();
    const url = system.gateways[0]!.url;
    await fc.assert(
      fc.asyncProperty(fc.array(wsCaseArb, WS_FRAMES_PER_RUN), async (cases) => {
        const client = await TestClient.connect(url, fuzzToken);
        try {
          const sent = cases.map((input) => renderWs(input, ctx, client.welcome.maxFrameBytes));
          for (const frame of sent) client.sendRaw(frame.data);
          inputs.ws += sent.length;
          const refs = new Map(sent.filter((s) => s.ref !== undefined).map((s) => [s.ref as string, s]));
          const uncorrelated = sent.filter((s) => s.ref === undefined);
          const minUncorrelated = uncorrelated.reduce((sum, s) => sum + answerBounds(s)[0], 0);
          const maxUncorrelated = uncorrelated.reduce((sum, s) => sum + answerBounds(s)[1], 0);
          const possibleUncorrelated = new Set<string>(
            uncorrelated.flatMap((s) => [
              ...(s.verdict.refusal ?? []),
              ...(s.verdict.type ? SEMANTIC_ERRORS[s.verdict.type] : []),
            ]),
          );

          const collect = () => {
            const byRef = new Map<string, AnyFrame[]>();
            const others: AnyFrame[] = [];
            for (const frame of client.frames.map(asAny)) {
              const ref = refOf(frame);
              if (ref !== undefined && refs.has(ref)) byRef.set(ref, [...(byRef.get(ref) ?? []), frame]);
              else if (!UNSOLICITED.has(frame.type) && !isOutcomeAck(frame)) others.push(frame);
            }
            return { byRef, others };
          };
          try {
            await eventually(
              () => {
                if (!client.isOpen) throw new Error('the gateway closed the connection');
                const { byRef, others } = collect();
                const answered = [...refs].every(([ref, s]) => isAnswered(s, byRef.get(ref) ?? []));
                return answered && others.length >= minUncorrelated;
              },
              'an answer to every frame',
              ANSWER_TIMEOUT_MS,
            );
          } catch (error) {
            const { byRef, others } = collect();
            const missing = [...refs.values()]
              .filter((s) => !isAnswered(s, byRef.get(s.ref as string) ?? []))
              .slice(0, 5);
            throw new Error(
              `${(error as Error).message}; ${others.length}/${minUncorrelated} answers to inputs without id; ` +
                `unanswered: ${missing.map((s) => `\n  ${s.label}: ${preview(s.data)}`).join('') || 'none'}`,
              { cause: error },
            );
          }
          await sleep(SETTLE_MS);
          const { byRef, others } = collect();

          const violations: string[] = [];
          for (const [ref, s] of refs) {
            const frames = byRef.get(ref) ?? [];
            const problem = checkAnswer(s, frames);
            if (problem) violations.push(`${s.label}: ${problem}\n    input: ${preview(s.data)}`);
            const first = frames[0];
            if (first) tallies.ws.add(first.type === 'error' ? codeOf(first) : `reply:${first.type}`);
          }
          for (const frame of others) {
            tallies.ws.add(frame.type === 'error' ? codeOf(frame) : `reply:${frame.type}`);
            if (frame.type === 'error' && !possibleUncorrelated.has(codeOf(frame)))
              violations.push(
                `an input without id got ${codeOf(frame)} (${String(frame.payload['message'])}), ` +
                  `where only ${[...possibleUncorrelated].join('|')} fit the inputs without id ` +
                  `(${uncorrelated.map((s) => `\n    ${s.label}: ${preview(s.data, 80)}`).join('')})`,
              );
          }
          if (others.length > maxUncorrelated)
            violations.push(
              `${others.length} answers to ${uncorrelated.length} inputs without id (at most ${maxUncorrelated})`,
            );
          if (client.unparsed.length > 0) violations.push(`non-JSON frames from the gateway: ${client.unparsed[0]}`);
          for (const ack of client.framesOf('ack')) {
            const { entityType, entityId, mutationId: accepted } = ack.payload;
            acceptedKeys.add(keyOf({ tenant: TENANT, entityType, entityId }));
            acceptedMutations.add(accepted);
          }
          if (violations.length > 0) throw new Error(violations.slice(0, 5).join('\n'));
        } finally {
          await client.close();
        }
        await pingBystander();
      }),
      { seed: SEED, numRuns: WS_RUNS, endOnFailure: true },
    );
    assertAllRunning();
    timings.push(`WebSocket ${Math.round((Date.now() - phaseStart) / 100) / 10} s`);
  });

  it('closes a connection for a frame over the hard limit or invalid UTF-8 text, and only that one', async () => {
    const url = system.gateways[0]!.url;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc
            .integer({ min: HARD_MAX_PAYLOAD_BYTES + 1, max: HARD_MAX_PAYLOAD_BYTES + 4096 })
            .map((size) => ({ size, bytes: undefined })),
          fc.constantFrom(...INVALID_UTF8).map((bytes) => ({ size: 0, bytes })),
        ),
        async ({ size, bytes }) => {
          const socket = new WebSocket(url, [WS_SUBPROTOCOL, `bearer.${fuzzToken}`], { perMessageDeflate: false });
          const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
          socket.on('error', () => undefined);
          await new Promise<void>((resolve, reject) => {
            socket.once('message', () => resolve()); // welcome
            socket.once('close', () => reject(new Error('closed before welcome')));
          });
          if (bytes) socket.send(Buffer.from([0x7b, ...bytes, 0x7d]), { binary: false });
          else socket.send('x'.repeat(size));
          const code = await closed;
          expect(code).toBe(bytes ? 1007 : 1009);
          tallies.ws.add(`close:${code}`);
          inputs.ws++;
          await pingBystander();
        },
      ),
      { seed: SEED + 1, numRuns: WS_CLOSING_RUNS, endOnFailure: true },
    );
    assertAllRunning();
  });

  it('answers every HTTP request with a 4xx and a stable {code, message}, or 200 when it is valid', async () => {
    const phaseStart = Date.now();
    const http = system.gateways[0]!.httpUrl;
    const bearer = (auth: AuthMode): Record<string, string> => {
      switch (auth) {
        case 'ok':
          return { authorization: `Bearer ${fuzzToken}` };
        case 'lowercase':
          return { authorization: `bearer ${fuzzToken}` };
        case 'garbage':
          return { authorization: 'Bearer not.a.token' };
        case 'expired':
          return { authorization: `Bearer ${ctx.tokens.expired}` };
        case 'basic':
          return { authorization: 'Basic Zm9vOmJhcg==' };
        default:
          return {};
      }
    };
    const validAuth = (auth: AuthMode) => auth === 'ok' || auth === 'lowercase';

    async function send(input: HttpCase): Promise<string | undefined> {
      inputs.http++;
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), ANSWER_TIMEOUT_MS);
      let sentBody: unknown;
      let sentBytes = 0;
      let what = input.label;
      try {
        let response: Response;
        if (input.kind === 'post') {
          let body: string | Buffer;
          if ('json' in input.body) body = fill(toJson(input.body.json), ctx);
          else if ('text' in input.body) body = input.body.text;
          else if ('bytes' in input.body) body = Buffer.from(input.body.bytes);
          else {
            const template = fill(toJson({ mutations: [{ ...SIZED_ITEM, data: { pad: '\u0002' } }] }), ctx);
            body = template.replace(
              '\\u0002',
              'p'.repeat(Math.max(0, input.body.sized - Buffer.byteLength(template) + 6)),
            );
          }
          if (typeof body === 'string') {
            try {
              sentBody = JSON.parse(body);
            } catch {
              sentBody = undefined;
            }
          }
          what = `${input.label}: ${preview(body)}`;
          sentBytes = Buffer.byteLength(body);
          const headers: Record<string, string> = { ...bearer(input.auth) };
          if (input.contentType !== undefined) headers['content-type'] = input.contentType;
          if (input.encoding !== undefined) headers['content-encoding'] = input.encoding;
          response = await fetch(`${http}/api/v1/changes`, {
            method: 'POST',
            headers,
            body:
              typeof body === 'string' && input.contentType !== undefined ? body : new Uint8Array(Buffer.from(body)),
            signal: controller.signal,
          });
        } else {
          const query = fill(input.query, ctx);
          const path = input.kind === 'sse' ? '/api/v1/sync/events' : '/api/v1/changes';
          const tokenQuery = input.auth === 'query' ? `${query ? '&' : ''}access_token=${fuzzToken}` : '';
          const headers: Record<string, string> = { ...bearer(input.auth) };
          if (input.lastEventId !== undefined) headers['last-event-id'] = fill(input.lastEventId, ctx);
          what = `${input.label}: ${path}?${query.slice(0, 200)}`;
          response = await fetch(`${http}${path}?${query}${tokenQuery}`, { headers, signal: controller.signal });
        }
        const status = response.status;
        const type = response.headers.get('content-type') ?? '';
        if (input.kind === 'sse' && status === 200) {
          controller.abort(); // the stream stays open otherwise
          await response.body?.cancel().catch(() => undefined);
          tallies.http.add('200 sse');
          if (!type.startsWith('text/event-stream')) return `${what}: 200 with content-type ${type}`;
          const tokenInQuery = input.auth === 'query' || input.query.includes('access_token=');
          if (!validAuth(input.auth) && !tokenInQuery) return `${what}: 200 without a valid token`;
          return undefined;
        }
        const text = await response.text();
        let body: Record<string, unknown> | undefined;
        try {
          const parsed: unknown = JSON.parse(text);
          body = isJsonObject(parsed) ? parsed : undefined;
        } catch {
          body = undefined;
        }
        if (!body) return `${what}: ${status} with a body that is no JSON object: ${preview(text)}`;
        if (status === 200) {
          if (!validAuth(input.auth)) return `${what}: 200 without a valid token`;
          if (input.kind === 'changes') {
            tallies.http.add('200 changes');
            if (body['mode'] !== 'changes' || !cursorSchema.safeParse(body['cursor']).success)
              return `${what}: 200 with ${preview(text)}`;
            return undefined;
          }
          tallies.http.add('200 batch');
          const results = body['results'];
          const items = isJsonObject(sentBody) && Array.isArray(sentBody['mutations']) ? sentBody['mutations'] : [];
          if (!Array.isArray(results) || results.length !== items.length) return `${what}: 200 with ${preview(text)}`;
          for (const result of results as Array<Record<string, unknown>>) {
            if (result['status'] === 'accepted') {
              const item = items[Number(result['index'])] as Record<string, unknown>;
              acceptedKeys.add(
                keyOf({ tenant: TENANT, entityType: String(item['entityType']), entityId: String(item['entityId']) }),
              );
              acceptedMutations.add(String(result['mutationId']));
              tallies.http.add('item accepted');
              continue;
            }
            const code = String(result['code']);
            tallies.http.add(`item ${code}`);
            if (!ERROR_CODES.has(code) || code === ErrorCode.INTERNAL)
              return `${what}: item ${String(result['index'])} got ${code} (${String(result['message'])})`;
          }
          return undefined;
        }
        const code = String(body['code']);
        tallies.http.add(`${status} ${code}`);
        const wellFormedBatch =
          input.kind === 'post' &&
          validAuth(input.auth) &&
          sentBytes <= HTTP_BODY_LIMIT &&
          (input.contentType === 'application/json' || input.contentType === 'APPLICATION/JSON') &&
          (input.encoding === undefined || input.encoding === 'identity') &&
          batchRequestSchema.safeParse(sentBody).success;
        if (wellFormedBatch) return `${what}: a well-formed batch got ${status} ${code} (${String(body['message'])})`;
        if (!codeStatuses.has(code)) codeStatuses.set(code, new Set());
        codeStatuses.get(code)?.add(status);
        if (status < 400 || status > 499) return `${what}: status ${status} ${text.slice(0, 200)}`;
        if (!ERROR_CODES.has(code) || typeof body['message'] !== 'string')
          return `${what}: ${status} without a stable {code, message}: ${preview(text)}`;
        if (!type.startsWith('application/json')) return `${what}: ${status} with content-type ${type}`;
        if (
          input.kind === 'post' &&
          'sized' in input.body &&
          input.body.sized > HTTP_BODY_LIMIT &&
          input.contentType === 'application/json' &&
          !input.encoding &&
          code !== ErrorCode.FRAME_TOO_LARGE
        )
          return `${what}: a body over the limit got ${status} ${code}`;
        return undefined;
      } catch (error) {
        return `${what}: request failed: ${(error as Error).message}`;
      } finally {
        clearTimeout(timer);
      }
    }

    await fc.assert(
      fc.asyncProperty(fc.array(httpCaseArb, HTTP_REQUESTS_PER_RUN), async (cases) => {
        const violations: string[] = [];
        let next = 0;
        await Promise.all(
          Array.from({ length: HTTP_CONCURRENCY }, async () => {
            while (next < cases.length) {
              const problem = await send(cases[next++] as HttpCase);
              if (problem) violations.push(problem);
            }
          }),
        );
        if (violations.length > 0) throw new Error(violations.slice(0, 5).join('\n'));
        await pingBystander();
      }),
      { seed: SEED + 2, numRuns: HTTP_RUNS, endOnFailure: true },
    );
    const unstable = [...codeStatuses].filter(([, statuses]) => statuses.size > 1);
    expect(unstable.map(([code, statuses]) => `${code}: ${[...statuses].join(', ')}`)).toEqual([]);
    assertAllRunning();
    timings.push(`HTTP ${Math.round((Date.now() - phaseStart) / 100) / 10} s`);
  });

  it('terminates and records every malformed message published onto MUTATIONS, creating nothing', async () => {
    const phaseStart = Date.now();
    const subjects = new Subjects(system.namespace);
    const published = new Map<number, string>();
    const subjectOf = (input: NatsCase, body: unknown): string => {
      const m = isJsonObject(body) ? body : {};
      const type = input.kind === 'message' && input.subject === 'other-type' ? 'tasks' : m['entityType'];
      let id = m['entityId'];
      if (input.kind === 'message' && input.subject === 'other-entity') id = `${String(id)}-other`;
      try {
        if (typeof type !== 'string' || typeof id !== 'string') throw new Error('no subject in this body');
        return subjects.mutation(TENANT, type, id);
      } catch {
        return subjects.mutation(TENANT, 'notes', `nats-${nextSerial()}`);
      }
    };

    await fc.assert(
      fc.asyncProperty(fc.array(natsCaseArb, NATS_MESSAGES_PER_RUN), async (cases) => {
        await Promise.all(
          cases.map(async (input) => {
            let data: Uint8Array;
            let body: unknown;
            if (input.kind === 'bytes') data = input.bytes;
            else if (input.kind === 'text') data = Buffer.from(input.text);
            else {
              const text = fill(toJson(input.message), ctx);
              data = Buffer.from(text);
              body = JSON.parse(text);
            }
            const subject = subjectOf(input, body);
            const refusal = natsRefusal(subject, data, subjects);
            if (refusal === undefined) {
              tallies.nats.add('skipped: valid after all');
              return;
            }
            const ack = await js.publish(subject, data);
            inputs.nats++;
            published.set(
              ack.seq,
              `${input.label} on ${subject}: ${preview(input.kind === 'bytes' ? data : looseUtf8.decode(data))}`,
            );
            tallies.nats.add(`expect ${refusal}`);
          }),
        );
      }),
      { seed: SEED + 3, numRuns: NATS_RUNS, endOnFailure: true },
    );

    let recorded = new Set<number>();
    try {
      await eventually(async () => {
        assertAllRunning();
        const rows = await system.query<{ stream_seq: string }>(
          'SELECT stream_seq FROM rejected_messages WHERE stream = $1',
          [system.streams.mutations],
        );
        recorded = new Set(rows.map((row) => Number(row.stream_seq)));
        return [...published.keys()].every((seq) => recorded.has(seq));
      }, 'every malformed message to be recorded in rejected_messages');
    } catch (error) {
      const missing = [...published].filter(([seq]) => !recorded.has(seq)).slice(0, 5);
      throw new Error(
        `${(error as Error).message}; not recorded:${missing.map(([seq, what]) => `\n  #${seq} ${what}`).join('')}`,
        { cause: error },
      );
    }
    const created = await system.query<{ entity_id: string }>(
      `SELECT entity_id FROM entities WHERE tenant = $1 AND entity_id LIKE 'nats-%'`,
      [TENANT],
    );
    expect(created).toEqual([]);
    assertAllRunning();
    timings.push(`NATS ${Math.round((Date.now() - phaseStart) / 100) / 10} s`);
  });

  it('survives valid mutations published with malformed headers', async () => {
    const subjects = new Subjects(system.namespace);
    const headerValue = fc.oneof(
      fc.constantFrom('', ' ', 'a.b', '*', '>', 'x'.repeat(300), '-1', '1e400', 'abc', '00-zz-zz-01', 'ü'),
      fc.string({ unit: 'grapheme-ascii', maxLength: 30 }),
    );
    const gatewayHeader = headerValue;
    const headerSets = fc.sample(
      fc.record(
        {
          [Header.gatewayId]: gatewayHeader,
          [Header.connectionId]: headerValue,
          [Header.receivedAt]: headerValue,
          traceparent: headerValue,
          tracestate: headerValue,
          [Header.msgId]: headerValue,
        },
        { requiredKeys: [] },
      ),
      { seed: SEED + 4, numRuns: NATS_HEADER_MESSAGES },
    );
    // One at a time, so that a message that hurts the worker is named.
    let previous = 'none';
    for (const set of headerSets) {
      const entityId = `hdr-${nextSerial()}`;
      const id = mutationId();
      const message = {
        mutationId: id,
        tenant: TENANT,
        userId: 'svc',
        clientId: 'svc',
        entityType: 'notes',
        entityId,
        op: 'upsert',
        data: { headers: true },
        baseVersion: 0,
        vectorClock: { svc: 1 },
        hlc: hlcNow('svc'),
      };
      const headers = natsHeaders();
      const used: Record<string, string> = {};
      for (const [key, value] of Object.entries(set)) {
        if (value === undefined || /[\r\n]/.test(value)) continue;
        try {
          headers.set(key, value);
          used[key] = value;
        } catch {
          // a value the client itself refuses to send
        }
      }
      let ack;
      try {
        ack = await js.publish(subjects.mutation(TENANT, 'notes', entityId), JSON.stringify(message), { headers });
      } catch {
        tallies.nats.add('headers: refused by NATS');
        continue;
      }
      if (ack.duplicate) {
        tallies.nats.add('headers: dropped as duplicate');
        continue;
      }
      inputs.nats++;
      tallies.nats.add('headers: valid body');
      acceptedKeys.add(keyOf({ tenant: TENANT, entityType: 'notes', entityId }));
      acceptedMutations.add(id);
      const current = `#${ack.seq} with headers ${JSON.stringify(used)}`;
      try {
        await eventually(async () => {
          assertAllRunning();
          const rows = await system.query(
            'SELECT 1 FROM entities WHERE tenant = $1 AND entity_id = $2 AND version > 0',
            [TENANT, entityId],
          );
          return rows.length > 0;
        }, `message ${current} to be applied`);
        await sleep(20); // what follows the commit (outcome, publication) has run
        assertAllRunning();
      } catch (error) {
        throw new Error(
          `${(error as Error).message}\nwhile processing message ${current}, or just after message ${previous}`,
          { cause: error },
        );
      }
      previous = current;
    }
  });

  it('keeps every process up, the canaries unchanged, and nothing stored but what was accepted', async () => {
    assertAllRunning();
    for (const service of services)
      for (let i = 0; i < system.count(service); i++)
        expect(`${service}#${i} pid ${system.instance(service, i).pid}`).toBe(
          `${service}#${i} pid ${pids.get(`${service}#${i}`)}`,
        );
    const health = await fetch(`${system.gateways[0]!.httpUrl}/health`);
    expect(health.status).toBe(200);

    // Every accepted mutation was processed; then every entity is one an accepted input named.
    let missing: string[] = [];
    try {
      await eventually(async () => {
        const ledger = new Set(
          (
            await system.query<{ mutation_id: string }>('SELECT mutation_id FROM mutations WHERE tenant = $1', [TENANT])
          ).map((row) => row.mutation_id),
        );
        missing = [...acceptedMutations].filter((id) => !ledger.has(id));
        return missing.length === 0;
      }, 'every accepted mutation to reach the ledger');
    } catch (error) {
      throw new Error(`${(error as Error).message}: ${missing.slice(0, 10).join(', ')}`, { cause: error });
    }
    const entities = await system.query<{ tenant: string; entity_type: string; entity_id: string }>(
      'SELECT tenant, entity_type, entity_id FROM entities',
    );
    const unexplained = entities
      .map((row) => ({ tenant: row.tenant, entityType: row.entity_type, entityId: row.entity_id }))
      .filter((key) => !acceptedKeys.has(keyOf(key)));
    expect(unexplained).toEqual([]);
    expect(await canaryState()).toEqual(canaryRows);

    // Nothing of the fuzz tenant reached the bystander of the canary tenant.
    const leaked = bystander.deltas().filter((d) => !(d.entityId === CANARIES[0].entityId && d.version === 1));
    expect(leaked).toEqual([]);
    await pingBystander();

    // A fresh client connects, writes and sees the change as fast as ever.
    const url = system.gateways[0]!.url;
    const reader = await TestClient.connect(url, await system.mintToken({ sub: 'reader', tenant: TENANT }), {
      timeoutMs: 3_000,
    });
    const writer = await TestClient.connect(url, await system.mintToken({ sub: 'writer', tenant: TENANT }), {
      timeoutMs: 3_000,
    });
    try {
      expect((await reader.request('subscribe', { entityTypes: ['notes'] }, { timeoutMs: 3_000 })).type).toBe(
        'subscribed',
      );
      const id = mutationId();
      const entityId = `fresh-${id}`;
      acceptedKeys.add(keyOf({ tenant: TENANT, entityType: 'notes', entityId }));
      const sentAt = Date.now();
      writer.send('mutate', {
        mutationId: id,
        entityType: 'notes',
        entityId,
        op: 'upsert',
        data: { fresh: true },
        baseVersion: 0,
        vectorClock: { writer: 1 },
        hlc: hlcNow('writer'),
      });
      expect((await writer.waitForOutcome(id, { timeoutMs: 3_000 })).payload.status).toBe('applied');
      await reader.waitForType('delta', (f) => f.payload.entityId === entityId, { timeoutMs: 3_000 });
      timings.push(`fresh write to delta ${Date.now() - sentAt} ms`);
    } finally {
      await reader.close();
      await writer.close();
    }
  });
});
