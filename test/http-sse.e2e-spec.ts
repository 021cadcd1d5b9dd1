import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Permissions } from '@syncline/contracts';
import { eventually } from './support/eventually.js';
import { SseClient } from './support/sse-client.js';
import { TestSystem } from './support/system.js';
import { hlcNow, mutationId } from './support/ws-client.js';

/** The HTTP edge: change history, batch submission and Server-Sent Events, with their permissions. */
describe('HTTP and SSE', () => {
  let system: TestSystem;
  let http: string;
  const streams: SseClient[] = [];

  beforeAll(async () => {
    system = await TestSystem.start({ gateways: 1, serviceEnv: { gateway: { SSE_HEARTBEAT_MS: '200' } } });
    http = system.gateways[0]!.httpUrl;
  });

  afterAll(async () => {
    await Promise.all(streams.map((stream) => stream.close()));
    await system?.stop();
  });

  const token = (user = 'svc', tenant = 'acme', permissions?: Partial<Permissions>) =>
    system.mintToken({ sub: user, tenant, ...(permissions ? { claims: { permissions } } : {}) });
  const bearer = async (...args: Parameters<typeof token>) => ({ authorization: `Bearer ${await token(...args)}` });

  function mutation(entityType: string, entityId: string, data: Record<string, unknown>, op = 'upsert') {
    return {
      mutationId: mutationId(),
      entityType,
      entityId,
      op,
      ...(op === 'delete' ? {} : { data }),
      baseVersion: 0,
      vectorClock: { svc: Date.now() },
      hlc: hlcNow('svc'),
    };
  }

  async function post(body: unknown, headers: Record<string, string>, raw?: string, query = '') {
    const response = await fetch(`${http}/api/v1/changes${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: raw ?? JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  async function get(path: string, headers: Record<string, string> = {}) {
    const response = await fetch(`${http}${path}`, { headers });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  async function openStream(query: string, headers: Record<string, string>) {
    const stream = await SseClient.open(`${http}/api/v1/sync/events?${query}`, headers);
    streams.push(stream);
    return stream;
  }

  async function stored(tenant: string, entityType: string): Promise<string[]> {
    const rows = await system.query<{ entity_id: string }>(
      `SELECT entity_id FROM entities WHERE tenant = $1 AND entity_type = $2 ORDER BY entity_id`,
      [tenant, entityType],
    );
    return rows.map((row) => row.entity_id);
  }

  it('takes a batch and answers each item on its own', async () => {
    const writer = await bearer('svc', 'acme', { write: ['tasks'] });
    const items = [
      mutation('tasks', 't-1', { title: 'one' }),
      { ...mutation('tasks', 't-2', {}), op: 'explode' },
      mutation('secrets', 's-1', { key: 'x' }),
      JSON.parse(
        '{"mutationId":"m-proto-0001","entityType":"tasks","entityId":"t-3","op":"upsert","data":{"__proto__":{"admin":true}},"baseVersion":0,"vectorClock":{},"hlc":"000000000000001:00000:svc"}',
      ),
      mutation('tasks', 't-4', { title: 'four' }),
    ];
    const { status, body } = await post({ mutations: items }, writer);
    expect(status).toBe(200);
    expect(body['results']).toEqual([
      { index: 0, mutationId: items[0]!.mutationId, status: 'accepted', duplicate: false },
      expect.objectContaining({ index: 1, status: 'error', code: 'VALIDATION_FAILED' }),
      expect.objectContaining({ index: 2, status: 'error', code: 'FORBIDDEN' }),
      expect.objectContaining({ index: 3, status: 'error', code: 'UNSAFE_INPUT' }),
      { index: 4, mutationId: items[4]!.mutationId, status: 'accepted', duplicate: false },
    ]);
    await eventually(async () => (await stored('acme', 'tasks')).length === 2, 'the accepted items to be stored');
    expect(await stored('acme', 'tasks')).toEqual(['t-1', 't-4']);
    expect(await stored('acme', 'secrets')).toEqual([]);

    const again = await post({ mutations: [items[0]] }, writer);
    expect(again.body['results']).toEqual([
      { index: 0, mutationId: items[0]!.mutationId, status: 'accepted', duplicate: true },
    ]);
  });

  it('refuses a prototype key in the envelope as the WebSocket edge does, storing nothing', async () => {
    const writer = await bearer('svc', 'acme', { write: ['tasks'] });
    const item = mutation('tasks', 't-proto', { title: 'never' });
    const raw = `{"mutations":[${JSON.stringify(item)}],"__proto__":{"admin":true}}`;
    const { status, body } = await post(undefined, writer, raw);
    expect(status).toBe(400);
    expect(body).toMatchObject({ code: 'UNSAFE_INPUT' });
    expect(await stored('acme', 'tasks')).not.toContain('t-proto');
  });

  it("answers with final outcomes on request, and serves the current state and one entity's history", async () => {
    const writer = await bearer();
    const created = mutation('sheets', 'sh-1', { a: 1 });
    const first = await post({ mutations: [created] }, writer, undefined, '?wait=true');
    expect(first.body['results']).toEqual([
      expect.objectContaining({
        status: 'accepted',
        outcome: expect.objectContaining({ status: 'applied', version: 1 }),
      }),
    ]);
    const patched = { ...mutation('sheets', 'sh-1', { b: 2 }, 'patch'), baseVersion: 1 };
    await post({ mutations: [patched] }, writer, undefined, '?wait=true');

    const state = await get('/api/v1/entities?entityType=sheets', writer);
    expect(state.body).toMatchObject({
      mode: 'snapshot',
      entities: [{ entityId: 'sh-1', version: 2, data: { a: 1, b: 2 } }],
    });
    const history = await get('/api/v1/changes?entityType=sheets&entityId=sh-1&sinceVersion=1', writer);
    expect((history.body['changes'] as Array<{ version: number }>).map((change) => change.version)).toEqual([2]);
  });

  it('refuses bad requests with stable codes', async () => {
    const writer = await bearer();
    expect(await post({ mutations: [] }, {})).toMatchObject({ status: 401, body: { code: 'AUTH_INVALID' } });
    expect(await post({}, writer, '{"mutations": [')).toMatchObject({ status: 400, body: { code: 'BAD_FRAME' } });
    expect(await post({ mutations: [] }, writer)).toMatchObject({ status: 400, body: { code: 'VALIDATION_FAILED' } });
    const tooMany = Array.from({ length: 101 }, (_, i) => mutation('tasks', `x-${i}`, {}));
    expect(await post({ mutations: tooMany }, writer)).toMatchObject({
      status: 400,
      body: { code: 'VALIDATION_FAILED' },
    });
    const huge = { mutations: [mutation('tasks', 'big', { text: 'x'.repeat(2 * 1024 * 1024) })] };
    expect(await post(huge, writer)).toMatchObject({ status: 413, body: { code: 'FRAME_TOO_LARGE' } });
    expect(await get('/api/v1/nowhere', writer)).toMatchObject({ status: 404, body: { code: 'NOT_FOUND' } });
    expect(await get('/api/v1/changes?entityType=tasks&since=nonsense', writer)).toMatchObject({
      status: 400,
      body: { code: 'VALIDATION_FAILED' },
    });
  });

  it('pages the change history after a cursor, within what the token may read', async () => {
    const writer = await bearer();
    await post({ mutations: ['h-1', 'h-2', 'h-3'].map((id) => mutation('history', id, { id })) }, writer);
    await eventually(async () => (await stored('acme', 'history')).length === 3, 'three entities');

    const first = await get('/api/v1/changes?entityType=history&limit=2', writer);
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ mode: 'changes', entityType: 'history', hasMore: true });
    const second = await get(`/api/v1/changes?entityType=history&limit=2&since=${first.body['cursor']}`, writer);
    expect(second.body).toMatchObject({ hasMore: false });
    const ids = [first, second].flatMap((page) =>
      (page.body['changes'] as Array<{ entityId: string }>).map((c) => c.entityId),
    );
    expect(ids.sort()).toEqual(['h-1', 'h-2', 'h-3']);

    const reader = await bearer('auditor', 'acme', { read: ['tasks'] });
    expect(await get('/api/v1/changes?entityType=history', reader)).toMatchObject({
      status: 403,
      body: { code: 'FORBIDDEN' },
    });
    const otherTenant = await get('/api/v1/changes?entityType=history', await bearer('eve', 'globex'));
    expect(otherTenant.body['changes']).toEqual([]);
  });

  it('streams changes as SSE, filtered, with heartbeats, and nothing of another tenant', async () => {
    const headers = await bearer('viewer', 'acme', { read: ['boards', 'cards'] });
    const all = await openStream('entityTypes=boards,cards', headers);
    const onlyB1 = await openStream('entityTypes=boards&entityId=b-1', headers);
    const deletions = await openStream('entityTypes=boards&events=deleted', headers);
    expect([all.status, onlyB1.status, deletions.status]).toEqual([200, 200, 200]);

    const writer = await bearer();
    await post({ mutations: [mutation('boards', 'b-1', { n: 1 }), mutation('boards', 'b-2', { n: 2 })] }, writer);
    await post({ mutations: [mutation('cards', 'c-1', { n: 3 }), mutation('notes', 'n-1', { n: 4 })] }, writer);
    await post({ mutations: [mutation('boards', 'b-1', {}, 'delete')] }, await bearer('x', 'acme'));
    await post({ mutations: [mutation('boards', 'b-9', { n: 9 })] }, await bearer('eve', 'globex'));

    await eventually(() => all.deltas().length === 4, 'four deltas on the wide stream');
    expect(
      all
        .deltas()
        .map((d) => `${d.entityType}/${d.entityId}`)
        .sort(),
    ).toEqual(['boards/b-1', 'boards/b-1', 'boards/b-2', 'cards/c-1']);
    await eventually(() => onlyB1.deltas().length === 2, 'b-1 created and deleted');
    expect(onlyB1.deltas().map((d) => d.entityId)).toEqual(['b-1', 'b-1']);
    await eventually(() => deletions.deltas().length === 1, 'the deletion');
    expect(deletions.deltas()[0]).toMatchObject({ entityId: 'b-1', deleted: true });
    expect(all.events.every((event) => event.id === (JSON.parse(event.data) as { cursor: string }).cursor)).toBe(true);
    await eventually(() => all.comments.includes('heartbeat'), 'a heartbeat comment');

    const forbidden = await openStream('entityTypes=boards,notes', headers);
    expect(forbidden.status).toBe(403);
  });

  it('resumes from Last-Event-ID with exactly the missed events', async () => {
    const headers = await bearer('viewer', 'acme');
    const writer = await bearer();
    const first = await openStream('entityTypes=feed', headers);
    await post({ mutations: ['f-1', 'f-2'].map((id) => mutation('feed', id, { id })) }, writer);
    await eventually(() => first.deltas().length === 2, 'the first two');
    const lastEventId = first.lastEventId as string;
    await first.close();

    await post({ mutations: ['f-3', 'f-4', 'f-5'].map((id) => mutation('feed', id, { id })) }, writer);
    await eventually(async () => (await stored('acme', 'feed')).length === 5, 'all five stored');
    // EventSource sends the id of the last event it saw; a token may also come as access_token.
    const resumed = await openStream(`entityTypes=feed&access_token=${await token('viewer')}`, {
      'last-event-id': lastEventId,
    });
    await post({ mutations: [mutation('feed', 'f-6', { id: 'f-6' })] }, writer);
    await eventually(() => resumed.deltas().length === 4, 'the missed three and the new one');
    // Each missed event once, and the new one; order is kept per entity, not across entities
    // (batches of different entities commit side by side).
    expect(
      resumed
        .deltas()
        .map((d) => `${d.entityId}@${d.version}`)
        .sort(),
    ).toEqual(['f-3@1', 'f-4@1', 'f-5@1', 'f-6@1']);

    const expired = await openStream('entityTypes=feed', { ...headers, 'last-event-id': 'zzzz:1' });
    await expired.ended();
    expect(expired.events.map((event) => event.event)).toEqual(['sync_required']);
  });

  // Last: it stops the gateway.
  it('ends open streams when the gateway stops, so it stops promptly and clients reconnect elsewhere', async () => {
    const stream = await openStream('entityTypes=feed', await bearer('viewer', 'acme'));
    const started = Date.now();
    const exit = await system.kill('gateway', 0, 'SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(5000);
    await stream.ended();
    expect(stream.events.at(-1)).toMatchObject({ event: 'error', data: expect.stringContaining('UNAVAILABLE') });
  });
});
