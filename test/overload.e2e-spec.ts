import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DifferentialSyncClient, MemoryStorage, nodeWebSocketFactory } from '@syncline/client/node';
import { eventually } from './support/eventually.js';
import { OpenLoopLoad, acceptedIds, metricSum } from './support/protocol-load.js';
import { TestSystem } from './support/system.js';
import { TestClient, hlcNow, mutationId } from './support/ws-client.js';

const TENANT = 'acme';
/** Short, so that a modest offered rate is an overload for a worker made slow on purpose. */
const QUEUE_DELAY_MS = 300;
const SDK_EDITS = 10;

/**
 * Overload: while the sync workers are busy and have more queued than they process in
 * `OVERLOAD_QUEUE_DELAY_MS`, a gateway refuses new mutations with `OVERLOADED` and a retry hint
 * instead of letting the queue grow. Connections stay open; the SDK holds everything it would send
 * for the hinted time and sends again; once the load ends, every write lands, once.
 */
describe('overload', () => {
  let system: TestSystem;
  let loader: TestClient;

  beforeAll(async () => {
    system = await TestSystem.start({
      gateways: 1,
      serviceEnv: {
        gateway: {
          OVERLOAD_QUEUE_DELAY_MS: String(QUEUE_DELAY_MS),
          RATE_LIMIT_FRAMES_PER_SECOND: '100000',
          RATE_LIMIT_TENANT_MUTATIONS_PER_SECOND: '100000',
        },
        // One mutation per statement, one statement at a time: a few hundred a second at most.
        'sync-worker': { WORKER_BATCH_SIZE: '1', WORKER_BATCHES_IN_FLIGHT: '1' },
      },
    });
    loader = await TestClient.connect(
      system.gateways[0]!.url,
      await system.mintToken({ sub: 'loader', tenant: TENANT }),
      { clientId: 'loader' },
    );
  });

  afterAll(async () => {
    await loader?.close().catch(() => undefined);
    await system?.stop();
  });

  const refusals = () =>
    metricSum({ monitoringUrl: system.gateways[0]!.httpUrl }, 'syncline_mutations_total', 'result="OVERLOADED"');

  it('refuses mutations with OVERLOADED while the queue is too long; the SDK backs off and every write lands once', async () => {
    // More than the worker can take, on a steady schedule; refused mutations are sent again after the hint.
    const load = new OpenLoopLoad([loader], 'tasks', { ratePerSecond: 2000, entitiesPerClient: 200, hotEntities: 2 });
    load.start();
    // When the SDK puts each mutation of an entity on the wire, first time only.
    const firstSent = new Map<string, number>();
    const sdk = new DifferentialSyncClient({
      clientId: 'editor',
      websocketUrl: system.gateways[0]!.url,
      entityTypes: ['notes'],
      tokenProvider: () => system.mintToken({ sub: 'editor', tenant: TENANT }),
      webSocketFactory: (url, protocols, options) => {
        const socket = nodeWebSocketFactory(url, protocols, options);
        const send = socket.send.bind(socket);
        socket.send = (data: string) => {
          const frame = JSON.parse(data) as { type: string; payload: { entityId?: string } };
          const entityId = frame.payload.entityId;
          if (frame.type === 'mutate' && entityId && !firstSent.has(entityId)) firstSent.set(entityId, Date.now());
          send(data);
        };
        return socket;
      },
      storage: new MemoryStorage(),
      retryDelay: 100,
    });
    const overloaded: number[] = [];
    sdk.on('error', (event) => {
      if (event.code !== 'OVERLOADED') return;
      overloaded.push(Date.now());
    });
    try {
      // The raw protocol: a mutation is refused with a hint, and the socket stays open.
      const refused = await eventually(
        async () => {
          const frameId = loader.send('mutate', {
            mutationId: mutationId(),
            entityType: 'probes',
            entityId: 'p-1',
            op: 'patch',
            data: { probe: true },
            baseVersion: 0,
            vectorClock: { probe: 1 },
            hlc: hlcNow('probe'),
          });
          const reply = await loader.waitForReply(frameId);
          return reply.type === 'error' ? reply : undefined;
        },
        'the gateway to refuse a mutation with OVERLOADED',
        20_000,
      );
      expect(refused).toMatchObject({ type: 'error', payload: { code: 'OVERLOADED' } });
      expect((refused as { payload: { retryAfterMs: number } }).payload.retryAfterMs).toBeGreaterThanOrEqual(200);

      // An SDK client edits during the overload: it is refused, waits as told, and does not hammer.
      await sdk.connect();
      const before = await refusals();
      for (let i = 0; i < SDK_EDITS; i++) await sdk.updateLocalState({ [`n-${i}`]: { text: `edit ${i}` } }, 'notes');
      await eventually(() => overloaded.length > 0, 'the SDK to be told OVERLOADED', 20_000);
      // An edit made now waits out the pause with the others (at least the shortest hint, 200 ms),
      // instead of going out at once on its own entity.
      const toldAt = overloaded[0]!;
      await sdk.updateLocalState({ late: { text: 'made during the pause' } }, 'notes');
      const lateSentAt = await eventually(
        () => firstSent.get('late'),
        'the edit made during the pause to be sent',
        20_000,
      );
      expect(lateSentAt - toldAt).toBeGreaterThanOrEqual(190);
      const watchedFrom = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 2000));
      // All the refusals in these two seconds, the load's included: the SDK's share is a few
      // per hinted pause (a client resending at once would add hundreds).
      const sdkRefusals = overloaded.filter((at) => at >= watchedFrom).length;
      expect(sdkRefusals).toBeLessThanOrEqual(SDK_EDITS * (1 + 2000 / 200));
      expect((await refusals()) - before).toBeGreaterThan(0);
      expect(loader.isOpen).toBe(true);
    } finally {
      load.close();
    }

    try {
      // The load ends; the queue drains; every write the gateway took lands once, and so do the SDK's.
      await eventually(() => sdk.getPendingChangesCount() === 0, "the SDK's edits to land", 60_000);
      const notes = await system.query<{ n: string }>(
        `SELECT count(*) AS n FROM changes WHERE tenant = $1 AND entity_type = 'notes'`,
        [TENANT],
      );
      expect(Number(notes[0]?.n)).toBe(SDK_EDITS + 1);
      const accepted = acceptedIds([loader], 'tasks');
      await eventually(
        async () => {
          const rows = await system.query<{ n: string }>(
            `SELECT count(*) AS n FROM mutations WHERE tenant = $1 AND mutation_id = ANY($2)`,
            [TENANT, [...accepted]],
          );
          return Number(rows[0]?.n) === accepted.size;
        },
        'every accepted mutation of the load in the ledger',
        60_000,
      );
      const duplicates = await system.query(
        `SELECT mutation_id FROM changes WHERE tenant = $1 GROUP BY mutation_id HAVING count(*) > 1`,
        [TENANT],
      );
      expect(duplicates).toEqual([]);
      expect(load.resent).toBeGreaterThan(0);
    } finally {
      await sdk.disconnect();
    }
  }, 150_000);
});
