import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect as connectNats } from '@nats-io/transport-node';
import { eventually } from './support/eventually.js';
import { TestSystem } from './support/system.js';
import { TestClient, hlcNow, mutationId } from './support/ws-client.js';

/** The change log is pruned by age, and a cursor into the pruned part is told so. */
describe('change log retention', () => {
  let system: TestSystem;
  let client: TestClient;

  beforeAll(async () => {
    system = await TestSystem.start({
      gateways: 1,
      env: { CHANGE_LOG_RETENTION_HOURS: '1', RETENTION_INTERVAL_MS: '200' },
    });
    client = await TestClient.connect(system.gateways[0]!.url, await system.mintToken({ sub: 'r', tenant: 'acme' }));
  });

  afterAll(async () => {
    await client?.close().catch(() => undefined);
    await system?.stop();
  });

  it('prunes changes older than the retention window and answers cursors older than that with sync_required', async () => {
    for (let i = 0; i < 4; i++) {
      const id = mutationId();
      client.send('mutate', {
        mutationId: id,
        entityType: 'logs',
        entityId: `l-${i}`,
        op: 'upsert',
        data: { i },
        baseVersion: 0,
        vectorClock: { r: i + 1 },
        hlc: hlcNow('r'),
      });
      await client.waitForOutcome(id);
    }
    const published = async () =>
      system.query<{ entity_id: string; seq: string | null }>(
        `SELECT c.entity_id, p.seq FROM changes c
           LEFT JOIN change_positions p USING (tenant, entity_type, entity_id, version) ORDER BY c.entity_id`,
      );
    await eventually(async () => (await published()).every((row) => row.seq !== null), 'changes to be published');
    const rows = await published();
    const seqOf = (entityId: string) => Number(rows.find((row) => row.entity_id === entityId)?.seq);

    // The first two changes age past the window.
    await system.query(`UPDATE changes SET created_at = now() - interval '2 hours' WHERE entity_id IN ('l-0', 'l-1')`);
    await eventually(async () => (await published()).length === 2, 'retention to prune the old changes');
    const [horizon] = await system.query<{ pruned_through_seq: string }>(
      `SELECT pruned_through_seq FROM change_log_horizon`,
    );
    expect(Number(horizon?.pruned_through_seq)).toBe(seqOf('l-1'));

    // The stream's window is shorter than the log's: it no longer holds the first three changes,
    // so older cursors are served from PostgreSQL, down to the retention horizon.
    const nc = await connectNats({ servers: process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222' });
    try {
      await (await jetstreamManager(nc)).streams.purge(system.streams.changes, { seq: seqOf('l-3') });
    } finally {
      await nc.close();
    }

    const subscribed = await client.request('subscribe', { entityTypes: ['logs'] });
    if (subscribed.type !== 'subscribed') throw new Error('not subscribed');
    const prefix = subscribed.payload.subscriptions[0]!.cursor.split(':')[0];
    const expired = await client.request('sync', { entityType: 'logs', since: `${prefix}:${seqOf('l-0')}` });
    expect(expired).toMatchObject({ type: 'sync_required', payload: { reason: 'cursor_expired' } });
    const served = await client.request('sync', { entityType: 'logs', since: `${prefix}:${seqOf('l-1')}` });
    expect(served).toMatchObject({ type: 'sync_response', payload: { mode: 'changes' } });
    if (served.type !== 'sync_response' || served.payload.mode !== 'changes') throw new Error('not changes');
    expect(served.payload.changes.map((change) => change.entityId)).toEqual(['l-2', 'l-3']);
  });
});
