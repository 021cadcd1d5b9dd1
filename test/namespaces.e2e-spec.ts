import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { randomBytes } from 'node:crypto';
import { bootService } from './support/boot-service.js';
import { TestSystem } from './support/system.js';
import { startNats, type DisposableNats } from './support/test-services.js';
import { TestClient, hlcNow, mutationId } from './support/ws-client.js';

/**
 * Deployments share a NATS server: each reserves only the stream sizes it is configured with,
 * its namespace and streams keep it apart from the others, and one that does not fit stops with
 * one line naming the limit and leaves nothing behind. On a private server with 96 MB of
 * JetStream storage, so that "full" comes quickly and the machine's server is not touched.
 */
describe('deployments sharing one NATS server', () => {
  const FITTING = { MUTATIONS_STREAM_MAX_BYTES: '16MB', CHANGES_STREAM_MAX_BYTES: '24MB' };
  let nats: DisposableNats;

  beforeAll(async () => {
    nats = await startNats({ maxFileStore: '96MB' });
  });

  afterAll(async () => {
    await nats?.destroy();
  });

  async function streamNames(): Promise<string[]> {
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      const names: string[] = [];
      for await (const name of jsm.streams.names()) names.push(name);
      return names.sort();
    } finally {
      await nc.close();
    }
  }

  it('runs two namespaces side by side, each seeing only its own changes', async () => {
    const env = { NATS_URL: nats.url, ...FITTING };
    const systems = await Promise.all([TestSystem.start({ gateways: 1, env }), TestSystem.start({ gateways: 1, env })]);
    const clients: TestClient[] = [];
    try {
      expect(await streamNames()).toEqual(
        systems.flatMap((system) => [system.streams.mutations, system.streams.changes]).sort(),
      );
      // The same tenant, users and entity in both: only the namespace tells them apart.
      const titles = ['in the first', 'in the second'];
      const readers: TestClient[] = [];
      for (const [index, system] of systems.entries()) {
        const [writer, reader] = await Promise.all(
          ['writer', 'reader'].map(async (user) => {
            const token = await system.mintToken({ sub: user, tenant: 'acme' });
            return TestClient.connect(system.gateways[0]!.url, token, { clientId: `${user}-${index}` });
          }),
        );
        clients.push(writer!, reader!);
        readers.push(reader!);
        expect((await reader!.request('subscribe', { entityTypes: ['note'] })).type).toBe('subscribed');
        const id = mutationId();
        writer!.send('mutate', {
          mutationId: id,
          entityType: 'note',
          entityId: 'n-1',
          op: 'upsert',
          data: { title: titles[index] },
          baseVersion: 0,
          vectorClock: { [`writer-${index}`]: 1 },
          hlc: hlcNow(`writer-${index}`),
        });
        // Version 1 in both: neither saw the other's write.
        expect((await writer!.waitForOutcome(id)).payload).toMatchObject({ status: 'applied', version: 1 });
      }
      for (const [index, reader] of readers.entries()) {
        const delta = await reader.waitForType('delta', (frame) => frame.payload.entityId === 'n-1');
        expect(delta.payload.changes).toEqual([expect.objectContaining({ field: '/title', newValue: titles[index] })]);
      }
      // Each has its own data: nothing crossed over.
      for (const [index, system] of systems.entries()) {
        const rows = await system.query<{ id: string; data: unknown }>('SELECT entity_id AS id, data FROM entities');
        expect(rows).toEqual([{ id: 'n-1', data: { title: titles[index] } }]);
        expect(readers[index]!.deltas('note')).toHaveLength(1);
      }
    } finally {
      await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
      await Promise.all(systems.map((system) => system.stop()));
    }
  });

  it.each(['gateway', 'sync-worker'] as const)(
    'stops a %s whose stream does not fit with one line naming the limit, and leaves no stream behind',
    async (service) => {
      const suffix = randomBytes(4).toString('hex');
      const names = { MUTATIONS_STREAM: `MUT_${suffix}`, CHANGES_STREAM: `CHG_${suffix}` };
      const before = await streamNames();
      const { code, stderr } = await bootService(service, {
        NODE_ENV: 'test',
        LOG_LEVEL: 'silent',
        NATS_URL: nats.url,
        SYNC_NAMESPACE: `ns${suffix}`,
        ...names,
        // MUTATIONS fits and is created first; CHANGES does not fit beside it.
        MUTATIONS_STREAM_MAX_BYTES: '16MB',
        CHANGES_STREAM_MAX_BYTES: '200MB',
      });
      expect(code).toBe(78);
      const lines = stderr.split('\n').filter((line) => line.trim().length > 0);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        new RegExp(
          `^NATS refused to create stream ${names.CHANGES_STREAM} \\(max_bytes 200 MB, max_age 1 day, 1 replica\\): ` +
            `.*insufficient storage.*Lower CHANGES_STREAM_MAX_BYTES or STREAM_REPLICAS`,
          'i',
        ),
      );
      expect(await streamNames()).toEqual(before);
    },
  );
});
