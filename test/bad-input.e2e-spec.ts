import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect as connectNats, headers } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { eventually } from './support/eventually.js';
import { TestSystem } from './support/system.js';
import { ErrorFrameRejection, TestClient, hlcNow, mutationId } from './support/ws-client.js';

/** Bad input gets a stable error code; the process keeps serving and nobody else notices. */
describe('bad input', () => {
  let system: TestSystem;
  let victim: TestClient;
  let bystander: TestClient;
  let writer: TestClient;
  let version = 0;

  beforeAll(async () => {
    system = await TestSystem.start({ gateways: 1 });
    const url = system.gateways[0]!.url;
    victim = await TestClient.connect(url, await system.mintToken({ sub: 'mallory', tenant: 'acme' }));
    bystander = await TestClient.connect(url, await system.mintToken({ sub: 'bob', tenant: 'acme' }));
    writer = await TestClient.connect(url, await system.mintToken({ sub: 'walt', tenant: 'acme' }), {
      clientId: 'walt',
    });
    await bystander.request('subscribe', { entityTypes: ['orders'] });
  });

  afterAll(async () => {
    for (const client of [victim, bystander, writer]) await client?.close().catch(() => undefined);
    await system?.stop();
  });

  /** A change by a well-behaved client still reaches the bystander. */
  async function expectOthersUnaffected(): Promise<void> {
    version++;
    const id = mutationId();
    writer.send('mutate', {
      mutationId: id,
      entityType: 'orders',
      entityId: 'o-1',
      op: 'upsert',
      data: { n: version },
      baseVersion: version - 1,
      vectorClock: { walt: version },
      hlc: hlcNow('walt'),
    });
    await writer.waitForOutcome(id);
    await bystander.waitForType('delta', (f) => f.payload.entityId === 'o-1' && f.payload.version === version);
  }

  const deep = (depth: number): unknown => (depth === 0 ? 1 : { a: deep(depth - 1) });

  it.each([
    ['text that is not JSON', 'hello', 'BAD_FRAME'],
    ['a JSON array', '[1,2]', 'BAD_FRAME'],
    ['a JSON string', '"subscribe"', 'BAD_FRAME'],
    ['an envelope without type', JSON.stringify({ payload: {}, timestamp: 1 }), 'VALIDATION_FAILED'],
    ['an envelope without timestamp', JSON.stringify({ type: 'ping', payload: {} }), 'VALIDATION_FAILED'],
    ['an unknown type', JSON.stringify({ type: 'drop_tables', payload: {}, timestamp: 1 }), 'UNKNOWN_TYPE'],
    [
      'an unknown payload field',
      JSON.stringify({ type: 'subscribe', payload: { entityTypes: ['a'], admin: true }, timestamp: 1 }),
      'VALIDATION_FAILED',
    ],
    [
      'a wrongly typed field',
      JSON.stringify({ type: 'subscribe', payload: { entityTypes: 'orders' }, timestamp: 1 }),
      'VALIDATION_FAILED',
    ],
    [
      'an entity type that is no subject token',
      JSON.stringify({ type: 'subscribe', payload: { entityTypes: ['a.>'] }, timestamp: 1 }),
      'VALIDATION_FAILED',
    ],
    [
      'a prototype-polluting key',
      '{"type":"ping","payload":{},"timestamp":1,"__proto__":{"admin":true}}',
      'UNSAFE_INPUT',
    ],
    ['nesting 100 levels deep', JSON.stringify({ type: 'ping', payload: deep(100), timestamp: 1 }), 'UNSAFE_INPUT'],
    ['a NUL character', JSON.stringify({ type: 'ping', payload: { x: 'a\u0000b' }, timestamp: 1 }), 'UNSAFE_INPUT'],
    ['a lone surrogate', '{"type":"ping","payload":{"x":"\\ud800"},"timestamp":1}', 'UNSAFE_INPUT'],
    [
      'a frame over the size limit',
      JSON.stringify({ type: 'ping', payload: { pad: 'x'.repeat(70_000) }, timestamp: 1 }),
      'FRAME_TOO_LARGE',
    ],
  ])('answers %s with a stable error code and keeps the connection', async (_what, frame, code) => {
    const mark = victim.mark();
    victim.sendRaw(frame);
    const error = await victim.waitForType('error', () => true, { since: mark });
    expect(error.payload.code).toBe(code);
    const pong = await victim.request('ping', {});
    expect(pong.type).toBe('pong');
    await expectOthersUnaffected();
  });

  it('answers invalid UTF-8 in a binary frame with BAD_FRAME', async () => {
    const mark = victim.mark();
    victim.sendRaw(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
    expect((await victim.waitForType('error', () => true, { since: mark })).payload.code).toBe('BAD_FRAME');
    await expectOthersUnaffected();
  });

  it('refers errors to the frame that caused them', async () => {
    const reply = await victim.request('mutate', { mutationId: 'short', entityType: 'orders' });
    expect(reply).toMatchObject({ type: 'error', payload: { code: 'VALIDATION_FAILED', ref: reply.id } });
  });

  it('rejects a mutation whose clock runs far ahead of the server', async () => {
    const future = `${String(Date.now() + 3_600_000).padStart(15, '0')}:00000:mallory`;
    const reply = await victim.request('mutate', {
      mutationId: mutationId(),
      entityType: 'orders',
      entityId: 'o-2',
      op: 'upsert',
      data: {},
      baseVersion: 0,
      vectorClock: {},
      hlc: future,
    });
    expect(reply).toMatchObject({ type: 'error', payload: { code: 'CLOCK_SKEW' } });
  });

  it('closes a connection that sends more than the hard frame limit, and only that one', async () => {
    const brute = await TestClient.connect(
      system.gateways[0]!.url,
      await system.mintToken({ sub: 'brute', tenant: 'acme' }),
    );
    brute.sendRaw('x'.repeat(2 * 1024 * 1024));
    expect((await brute.closed).code).toBe(1009);
    await expectOthersUnaffected();
  });

  it.each([
    ['an invalid token', (token: string) => ['syncline.v1', `bearer.${token}x`], 'AUTH_INVALID'],
    ['no token', () => ['syncline.v1'], 'AUTH_INVALID'],
  ])('refuses %s with an error frame and close code 4401', async (_what, protocols, code) => {
    const token = await system.mintToken({ sub: 'x', tenant: 'acme' });
    const attempt = TestClient.connect(system.gateways[0]!.url, token, { protocols: protocols(token) });
    const rejection = await attempt.then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(rejection).toBeInstanceOf(ErrorFrameRejection);
    expect((rejection as ErrorFrameRejection).code).toBe(code);
    expect((rejection as ErrorFrameRejection).close?.code).toBe(4401);
  });

  it('refuses an expired token with its own code, so the client fetches a fresh one', async () => {
    const token = await system.mintToken({ sub: 'late', tenant: 'acme', expiresIn: -60 });
    await expect(TestClient.connect(system.gateways[0]!.url, token)).rejects.toMatchObject({
      code: 'AUTH_EXPIRED',
      close: { code: 4402 },
    });
  });

  it('terminates and records a malformed message published straight onto MUTATIONS, and keeps consuming', async () => {
    const nc = await connectNats({ servers: process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222' });
    try {
      const js = jetstream(nc);
      const subject = `${system.namespace}.mut.acme.orders.o-9`;
      await js.publish(subject, new TextEncoder().encode('{"mutationId": 42}'), { headers: headers() });
      await js.publish(subject, new Uint8Array([0xff, 0x00, 0x01]));
    } finally {
      await nc.close();
    }
    await expectOthersUnaffected();
    const rejected = await eventually(async () => {
      // Rejections are recorded concurrently, so the stream's order is the one to compare.
      const rows = await system.query<{ reason: string }>(`SELECT reason FROM rejected_messages ORDER BY stream_seq`);
      return rows.length >= 2 && rows;
    }, 'both messages to be recorded as rejected');
    expect(rejected.map((r) => r.reason)).toEqual([expect.stringMatching(/^schema: /), 'not valid JSON']);
    const entity = await system.query(`SELECT entity_id FROM entities WHERE entity_id = 'o-9'`);
    expect(entity).toEqual([]);
  });
});
