import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { JsonObject, OutcomeAckPayload } from '@syncline/contracts';
import { Replica, type SentMutation } from './support/replica.js';
import { TestSystem } from './support/system.js';
import { TestClient, hlcNow, mutationId, type FrameOf } from './support/ws-client.js';

/**
 * The path of one change through real processes: two gateways, a worker and a conflict service
 * on the local NATS and PostgreSQL, clients as plain WebSocket connections.
 */
describe('sync path', () => {
  let system: TestSystem;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    system = await TestSystem.start({ gateways: 2, env: { DEFAULT_CONFLICT_STRATEGY: 'merge' } });
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
    await system?.stop();
  });

  async function connect(gateway: number, user = 'alice', tenant = 'acme'): Promise<TestClient> {
    const token = await system.mintToken({ sub: user, tenant });
    const client = await TestClient.connect(system.gateways[gateway]!.url, token, {
      clientId: `${user}-${clients.length}`,
    });
    clients.push(client);
    return client;
  }

  async function subscribe(client: TestClient, entityType: string, cursor?: string): Promise<FrameOf<'subscribed'>> {
    const reply = await client.request('subscribe', {
      entityTypes: [entityType],
      ...(cursor ? { cursors: { [entityType]: cursor } } : {}),
    });
    if (reply.type !== 'subscribed') throw new Error(`subscribe failed: ${JSON.stringify(reply.payload)}`);
    return reply;
  }

  const clocks = new Map<TestClient, number>();
  /** Sends a mutation and resolves with its final ack. */
  async function mutate(
    client: TestClient,
    mutation: Omit<SentMutation, 'mutationId'> & { entityType: string; baseVersion: number; mutationId?: string },
  ): Promise<OutcomeAckPayload> {
    const node = client.clientId ?? 'client';
    const counter = (clocks.get(client) ?? 0) + 1;
    clocks.set(client, counter);
    const id = mutation.mutationId ?? mutationId();
    client.send('mutate', {
      mutationId: id,
      entityType: mutation.entityType,
      entityId: mutation.entityId,
      op: mutation.op,
      ...(mutation.data ? { data: mutation.data } : {}),
      baseVersion: mutation.baseVersion,
      vectorClock: { [node]: counter },
      hlc: hlcNow(node),
    });
    const ack = await client.waitForOutcome(id);
    return ack.payload as OutcomeAckPayload;
  }

  async function serverState(
    entityType: string,
    tenant = 'acme',
  ): Promise<Map<string, { version: number; data: JsonObject | null }>> {
    const rows = await system.query<{ entity_id: string; version: string; data: JsonObject | null; deleted: boolean }>(
      `SELECT entity_id, version, data, deleted FROM entities WHERE tenant = $1 AND entity_type = $2 AND version > 0`,
      [tenant, entityType],
    );
    return new Map(
      rows.map((row) => [row.entity_id, { version: Number(row.version), data: row.deleted ? null : row.data }]),
    );
  }

  it('delivers a change made on gateway 1 to a subscriber on gateway 2, with version and sequence', async () => {
    const author = await connect(0);
    const reader = await connect(1, 'bob');
    await subscribe(author, 'orders');
    const subscribed = await subscribe(reader, 'orders');
    expect(subscribed.payload.subscriptions[0]?.cursor).toMatch(/^[a-z0-9]+:\d+$/);

    const sentAt = author.mark();
    const ack = await mutate(author, {
      entityType: 'orders',
      entityId: 'o-1',
      op: 'upsert',
      data: { stage: 'new', qty: 2 },
      baseVersion: 0,
    });
    expect(ack).toMatchObject({ status: 'applied', version: 1 });
    const accepted = author.frames.slice(sentAt).find((f) => f.type === 'ack' && f.payload.status === 'accepted');
    expect(accepted).toBeDefined();

    const delta = await reader.waitForType('delta', (f) => f.payload.entityId === 'o-1');
    expect(delta.payload).toMatchObject({
      entityType: 'orders',
      entityId: 'o-1',
      version: 1,
      op: 'upsert',
      deleted: false,
    });
    expect(delta.payload.seq).toBeGreaterThan(0);
    expect(delta.payload.cursor).toBe(
      `${subscribed.payload.subscriptions[0]!.cursor.split(':')[0]}:${delta.payload.seq}`,
    );
    expect(delta.payload.changes).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ field: '/stage', changeType: 'added', newValue: 'new' }),
        expect.objectContaining({ field: '/qty', changeType: 'added', newValue: 2 }),
      ]),
    );

    // A patch yields only the changed field; the author gets an ack, never its own echo.
    await mutate(author, {
      entityType: 'orders',
      entityId: 'o-1',
      op: 'patch',
      data: { stage: 'packed' },
      baseVersion: 1,
    });
    const second = await reader.waitForType('delta', (f) => f.payload.entityId === 'o-1' && f.payload.version === 2);
    expect(second.payload.changes).toEqual([
      expect.objectContaining({ field: '/stage', oldValue: 'new', newValue: 'packed' }),
    ]);
    expect(author.deltas('orders')).toEqual([]);
  });

  it('merges concurrent edits of one entity and every client converges to the server state', async () => {
    const a = await connect(0, 'ann');
    const b = await connect(1, 'ben');
    await subscribe(a, 'notes');
    await subscribe(b, 'notes');
    const sentA: SentMutation[] = [];
    const sentB: SentMutation[] = [];

    const created = { entityId: 'n-1', op: 'upsert' as const, data: { title: 'draft', body: 'x', tags: ['a'] } };
    const c0 = await mutate(a, { ...created, entityType: 'notes', baseVersion: 0 });
    sentA.push({ ...created, mutationId: c0.mutationId });
    await b.waitForType('delta', (f) => f.payload.entityId === 'n-1' && f.payload.version === 1);

    // Both edit version 1 at once: disjoint fields merge, the shared field goes to the later HLC.
    const editA = { entityId: 'n-1', op: 'patch' as const, data: { title: 'final', body: 'from ann' } };
    const editB = { entityId: 'n-1', op: 'patch' as const, data: { tags: ['a', 'b'], body: 'from ben' } };
    const [ackA, ackB] = await Promise.all([
      mutate(a, { ...editA, entityType: 'notes', baseVersion: 1 }),
      mutate(b, { ...editB, entityType: 'notes', baseVersion: 1 }),
    ]);
    sentA.push({ ...editA, mutationId: ackA.mutationId });
    sentB.push({ ...editB, mutationId: ackB.mutationId });
    expect([ackA.version, ackB.version].sort()).toEqual([2, 3]);
    const second = ackA.version === 3 ? ackA : ackB;
    const secondEdit = second === ackA ? editA : editB;

    await a
      .waitForType('delta', (f) => f.payload.entityId === 'n-1' && f.payload.version === ackB.version)
      .catch(() => undefined);
    await b
      .waitForType('delta', (f) => f.payload.entityId === 'n-1' && f.payload.version === ackA.version)
      .catch(() => undefined);

    const server = await serverState('notes');
    expect(server.get('n-1')?.data).toMatchObject({ title: 'final', tags: ['a', 'b'] });
    expect(['from ann', 'from ben']).toContain(server.get('n-1')?.data?.['body']);
    // The later patch applies as sent when it also won the contested field; otherwise it was merged.
    expect(second.status).toBe(server.get('n-1')?.data?.['body'] === secondEdit.data.body ? 'applied' : 'merged');
    expect(Replica.fromFrames(a.frames, 'notes', sentA).entities).toEqual(server);
    expect(Replica.fromFrames(b.frames, 'notes', sentB).entities).toEqual(server);

    const conflicts = await system.query<{
      strategy: string;
      base: JsonObject;
      client_data: JsonObject;
      server_data: JsonObject;
    }>(`SELECT strategy, base, client_data, server_data FROM conflicts WHERE tenant = 'acme' AND entity_id = 'n-1'`);
    expect(conflicts).toHaveLength(1);
    expect(conflicts[0]).toMatchObject({ strategy: 'merge', base: created.data });
  });

  it.each([
    ['server-wins', 'rejected', { owner: 'first' }],
    ['client-wins', 'applied', { owner: 'second' }],
    ['last-write-wins', 'applied', { owner: 'second' }],
  ] as const)('resolves with the %s policy of the entity type', async (strategy, status, expected) => {
    const entityType = `tasks-${strategy}`;
    await system.query(`INSERT INTO conflict_policies (tenant, entity_type, strategy) VALUES ('acme', $1, $2)`, [
      entityType,
      strategy,
    ]);
    const a = await connect(0, 'ann');
    const b = await connect(1, 'ben');
    await subscribe(a, entityType);
    await subscribe(b, entityType);
    await mutate(a, { entityType, entityId: 't-1', op: 'upsert', data: { owner: 'none' }, baseVersion: 0 });
    await mutate(a, { entityType, entityId: 't-1', op: 'patch', data: { owner: 'first' }, baseVersion: 1 });
    // b has not seen version 2: its edit is concurrent, and later by the clock.
    const ack = await mutate(b, {
      entityType,
      entityId: 't-1',
      op: 'patch',
      data: { owner: 'second' },
      baseVersion: 1,
    });
    expect(ack.status).toBe(status);
    const server = await serverState(entityType);
    expect(server.get('t-1')?.data).toEqual(expected);
    if (status === 'rejected') expect(ack).toMatchObject({ version: 2, data: expected });
    const recorded = await system.query<{ strategy: string; winner: string }>(
      `SELECT strategy, winner FROM conflicts WHERE entity_type = $1`,
      [entityType],
    );
    expect(recorded).toEqual([{ strategy, winner: status === 'rejected' ? 'server' : 'client' }]);
  });

  it('resumes on the other gateway with exactly the missed changes, in order, then live ones', async () => {
    const writer = await connect(0, 'walt');
    let reader = await connect(0, 'rita');
    await subscribe(reader, 'boards');
    await mutate(writer, { entityType: 'boards', entityId: 'b-1', op: 'upsert', data: { n: 0 }, baseVersion: 0 });
    const seen = await reader.waitForType('delta', (f) => f.payload.entityId === 'b-1' && f.payload.version === 1);
    const cursor = seen.payload.cursor as string;
    await reader.close();

    for (let version = 1; version <= 5; version++) {
      await mutate(writer, {
        entityType: 'boards',
        entityId: 'b-1',
        op: 'patch',
        data: { n: version },
        baseVersion: version,
      });
    }
    await mutate(writer, { entityType: 'boards', entityId: 'b-2', op: 'upsert', data: { n: 0 }, baseVersion: 0 });

    reader = await connect(1, 'rita');
    const resumed = await subscribe(reader, 'boards', cursor);
    expect(resumed.payload.subscriptions[0]?.replayed).toBe(6);
    const replayed = reader.deltas('boards');
    expect(replayed.map((d) => `${d.entityId}@${d.version}`)).toEqual([
      'b-1@2',
      'b-1@3',
      'b-1@4',
      'b-1@5',
      'b-1@6',
      'b-2@1',
    ]);
    expect(replayed.map((d) => d.seq)).toEqual([...replayed.map((d) => d.seq)].sort((x, y) => x! - y!));

    await mutate(writer, { entityType: 'boards', entityId: 'b-1', op: 'patch', data: { n: 6 }, baseVersion: 6 });
    await reader.waitForType('delta', (f) => f.payload.entityId === 'b-1' && f.payload.version === 7);
    expect(reader.deltas('boards').map((d) => `${d.entityId}@${d.version}`)).toEqual([
      'b-1@2',
      'b-1@3',
      'b-1@4',
      'b-1@5',
      'b-1@6',
      'b-2@1',
      'b-1@7',
    ]);
  });

  it('answers a cursor the stream cannot serve with sync_required', async () => {
    const client = await connect(1);
    const epoch = client.welcome.serverTime; // any epoch that is not the stream's
    const reply = await client.request('subscribe', {
      entityTypes: ['orders'],
      cursors: { orders: `${epoch.toString(36)}x:1` },
    });
    expect(reply).toMatchObject({ type: 'sync_required', payload: { entityType: 'orders', reason: 'epoch_changed' } });
  });

  it('subscribes each type on its own: a cursor ahead of the feed fails only its type', async () => {
    const client = await connect(1);
    const first = await subscribe(client, 'orders');
    const epoch = first.payload.subscriptions[0]!.cursor.split(':')[0];
    const id = client.send('subscribe', { entityTypes: ['orders', 'files'], cursors: { files: `${epoch}:999999999` } });
    const error = await client.waitForType('error', (f) => f.id === id);
    expect(error.payload).toMatchObject({ code: 'INVALID_CURSOR', ref: id });
    expect(error.payload.message).toMatch(/^files: /);
    const subscribed = await client.waitForType('subscribed', (f) => f.id === id);
    expect(subscribed.payload.subscriptions.map((s) => s.entityType)).toEqual(['orders']);
  });

  it('applies a mutation resent after a lost ack exactly once', async () => {
    const first = await connect(0, 'olga');
    const id = mutationId();
    const payload = {
      mutationId: id,
      entityType: 'carts',
      entityId: 'c-1',
      op: 'upsert',
      data: { items: 1 },
      baseVersion: 0,
      vectorClock: { olga: 1 },
      hlc: hlcNow('olga'),
    };
    first.send('mutate', payload);
    await first.waitForType('ack', (f) => f.payload.status === 'accepted');
    first.terminate(); // the outcome has nowhere to go

    const again = await connect(1, 'olga');
    again.send('mutate', payload);
    const outcome = await again.waitForOutcome(id);
    expect(outcome.payload).toMatchObject({ status: 'applied', version: 1, duplicate: true });
    again.send('mutate', payload);
    await again.waitFor(
      (f) => f.type === 'ack' && f.payload.mutationId === id && f.payload.status !== 'accepted' && f !== outcome,
    );

    const changes = await system.query(`SELECT version FROM changes WHERE mutation_id = $1`, [id]);
    expect(changes).toEqual([{ version: '1' }]);
    const entity = await system.query(`SELECT version FROM entities WHERE entity_type = 'carts' AND entity_id = 'c-1'`);
    expect(entity).toEqual([{ version: '1' }]);
  });

  it('serves changes since a cursor and paged snapshots through sync', async () => {
    const client = await connect(0, 'sam');
    await subscribe(client, 'files');
    for (let i = 0; i < 5; i++) {
      await mutate(client, { entityType: 'files', entityId: `f-${i}`, op: 'upsert', data: { i }, baseVersion: 0 });
    }
    const page1 = await client.request('sync', { entityType: 'files', snapshot: true, limit: 3 });
    expect(page1).toMatchObject({ type: 'sync_response', payload: { mode: 'snapshot', hasMore: true } });
    if (page1.type !== 'sync_response' || page1.payload.mode !== 'snapshot') throw new Error('not a snapshot');
    const page2 = await client.request('sync', {
      entityType: 'files',
      snapshot: true,
      limit: 3,
      pageToken: page1.payload.nextPageToken,
    });
    if (page2.type !== 'sync_response' || page2.payload.mode !== 'snapshot') throw new Error('not a snapshot');
    expect(page2.payload.hasMore).toBe(false);
    expect([...page1.payload.entities, ...page2.payload.entities].map((e) => e.entityId)).toEqual([
      'f-0',
      'f-1',
      'f-2',
      'f-3',
      'f-4',
    ]);
    expect(page2.payload.cursor).toBe(page1.payload.cursor);

    const changes = await client.request('sync', {
      entityType: 'files',
      since: `${page1.payload.cursor.split(':')[0]}:0`,
      limit: 2,
    });
    if (changes.type !== 'sync_response' || changes.payload.mode !== 'changes') throw new Error('not changes');
    expect(changes.payload.changes.map((c) => c.entityId)).toEqual(['f-0', 'f-1']);
    expect(changes.payload.hasMore).toBe(true);
    const rest = await client.request('sync', { entityType: 'files', since: changes.payload.cursor, limit: 10 });
    if (rest.type !== 'sync_response' || rest.payload.mode !== 'changes') throw new Error('not changes');
    expect(rest.payload.changes.map((c) => c.entityId)).toEqual(['f-2', 'f-3', 'f-4']);
    expect(rest.payload.hasMore).toBe(false);

    const one = await client.request('sync', { entityType: 'files', entityId: 'f-3', sinceVersion: 0 });
    if (one.type !== 'sync_response' || one.payload.mode !== 'changes') throw new Error('not changes');
    expect(one.payload.changes).toEqual([expect.objectContaining({ entityId: 'f-3', version: 1 })]);
  });

  it('deletes an entity as a tombstone that keeps its version', async () => {
    const author = await connect(0, 'dora');
    const reader = await connect(1, 'dan');
    await subscribe(reader, 'notes');
    await mutate(author, {
      entityType: 'notes',
      entityId: 'gone',
      op: 'upsert',
      data: { a: 1, b: { c: 2 } },
      baseVersion: 0,
    });
    const ack = await mutate(author, { entityType: 'notes', entityId: 'gone', op: 'delete', baseVersion: 1 });
    expect(ack).toMatchObject({ status: 'applied', version: 2 });
    const delta = await reader.waitForType('delta', (f) => f.payload.entityId === 'gone' && f.payload.version === 2);
    expect(delta.payload).toMatchObject({ op: 'delete', deleted: true });
    expect(delta.payload.changes).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ field: '/a', changeType: 'removed', oldValue: 1 }),
        expect.objectContaining({ field: '/b', changeType: 'removed', oldValue: { c: 2 } }),
      ]),
    );
    const snapshot = await reader.request('sync', { entityType: 'notes', entityId: 'gone', snapshot: true });
    expect(snapshot.payload).toMatchObject({ entities: [{ entityId: 'gone', version: 2, deleted: true, data: null }] });
  });

  it('keeps tenants apart', async () => {
    const other = await connect(1, 'eve', 'globex');
    await subscribe(other, 'orders');
    const acme = await connect(0, 'alice', 'acme');
    await mutate(acme, { entityType: 'orders', entityId: 'secret', op: 'upsert', data: { x: 1 }, baseVersion: 0 });
    await mutate(other, { entityType: 'orders', entityId: 'mine', op: 'upsert', data: { y: 1 }, baseVersion: 0 });
    const snapshot = await other.request('sync', { entityType: 'orders', snapshot: true });
    if (snapshot.type !== 'sync_response' || snapshot.payload.mode !== 'snapshot') throw new Error('not a snapshot');
    expect(snapshot.payload.entities.map((e) => e.entityId)).toEqual(['mine']);
    expect(other.deltas().map((d) => d.entityId)).not.toContain('secret');
  });
});
